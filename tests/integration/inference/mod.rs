//! Inference API: chat completions, text completions, embeddings.

pub mod test_openai_chat_completion;
pub mod test_openai_completion;
pub mod test_openai_embeddings;
