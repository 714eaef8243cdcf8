// Workflow module
