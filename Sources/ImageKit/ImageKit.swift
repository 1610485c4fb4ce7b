// ImageKit module.
