//! agentgen-groq: placeholder
