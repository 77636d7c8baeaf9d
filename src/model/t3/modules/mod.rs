pub mod cond_enc;
pub mod learned_pos_emb;
pub mod perceiver;
pub mod t3_config;
