//! Ports of chatterbox/models/s3gen/transformer: the pieces of the flow encoder
//! (`UpsampleConformerEncoder`) as s3gen.py configures it. Only the classes and branches that
//! configuration reaches are here: linear input layer, ESPnet relative positional encoding,
//! relative-position self-attention, pre-norm layers without macaron FFN or convolution module,
//! full attention (no chunk masks).

pub mod attention;
pub mod embedding;
pub mod encoder_layer;
pub mod positionwise_feed_forward;
pub mod subsampling;
pub mod upsample_encoder;
