//! Policy files: YAML an SRE edits → validated engine configuration. (Being written.)
