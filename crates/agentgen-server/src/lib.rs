//! agentgen-server: placeholder
