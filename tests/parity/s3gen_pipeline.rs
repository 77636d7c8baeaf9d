//! S3Gen as a whole (s3gen.py): `embed_ref` on real speech, then `inference` from fixed speech
//! tokens to the trimmed, faded waveform, with every random draw injected, for the guided
//! 10-step flow and Turbo's 2-step mean flow. Committed fixtures use the reduced S3Gen of
//! tools/parity/tiny_checkpoint.py; `--full` ones the real sizes.

use candle_core::{DType, Device, Tensor};
use chatterbox_worker::model::s3gen::flow::FlowPrompt;
use chatterbox_worker::model::s3gen::s3gen::{S3Gen, S3GenConfig};

use crate::fixture::{Fixture, assert_close};

/// The mel and x-vector of embed_ref are front-ends plus CAMPPlus: the budgets of those tests.
const PROMPT_FEAT_MAX_REL: f64 = 1e-5;
const EMBEDDING_MAX_REL: f64 = 1e-5;
/// Encoder, 10 (or 2) estimator calls and the vocoder chained in f32; the flow's own budget for
/// the 10-step solve is 1e-4 relative, and HiFT's decode adds ~1e-6. Measured: 1.2e-5 to
/// 2.9e-5 on the reduced S3Gen. At full size (56 random transformer blocks per call, 700
/// frames) the mel's f32 drift, amplified by the vocoder's exp(magnitude), reaches 4.8e-4
/// (guided) and 1.0e-3 (mean flow) relative, an SNR of 60 dB or more.
pub(crate) const WAV_MAX_REL: f64 = 5e-5;
pub(crate) const WAV_MAX_ABS: f64 = 2e-5;
pub(crate) const FULL_WAV_MAX_REL: f64 = 2e-3;
pub(crate) const FULL_WAV_MAX_ABS: f64 = 1e-3;

#[derive(serde::Deserialize)]
struct Config {
    s3gen: Option<S3GenConfig>,
    meanflow: bool,
    full: bool,
}

#[test]
fn s3gen_matches_reference_embed_ref_and_inference() {
    for fixture in Fixture::all("s3gen_pipeline") {
        let config: Config = fixture.config();
        let s3gen_config = config.s3gen.unwrap_or_else(|| match config.meanflow {
            true => S3GenConfig::s3gen_meanflow(),
            false => S3GenConfig::s3gen(),
        });
        let model = fixture
            .weights()
            .build(DType::F32, &Device::Cpu, S3Gen::RECOMPUTED_BUFFERS, |vb| {
                S3Gen::load(vb, &s3gen_config)
            })
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.case));

        let prompt = model.embed_ref(&fixture.input_f32s("reference")).unwrap();
        let expected_tokens: Vec<u32> = fixture
            .output("prompt_token")
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::U32)?.to_vec1())
            .unwrap();
        assert_eq!(
            prompt.prompt_token, expected_tokens,
            "{} prompt tokens",
            fixture.case
        );
        assert_close(
            &format!("{} prompt_feat", fixture.case),
            &prompt.prompt_feat,
            &fixture.output("prompt_feat"),
            PROMPT_FEAT_MAX_REL,
            1e-4,
        );
        assert_close(
            &format!("{} embedding", fixture.case),
            &prompt.embedding,
            &fixture.output("embedding"),
            EMBEDDING_MAX_REL,
            1e-5,
        );

        // The reference's own prompt, so the waveform check isolates inference.
        let reference_prompt = FlowPrompt {
            prompt_token: expected_tokens,
            prompt_feat: fixture.output("prompt_feat"),
            embedding: fixture.output("embedding"),
        };
        let tokens: Vec<u32> = fixture
            .input("tokens")
            .to_dtype(DType::U32)
            .and_then(|t| t.to_vec1())
            .unwrap();
        let wav = model
            .inference_with(&tokens, &reference_prompt, &fixture.s3gen_noise())
            .unwrap();
        let wav = Tensor::new(wav, &Device::Cpu).unwrap();
        assert_close(
            &format!("{} waveform", fixture.case),
            &wav,
            &fixture.output("wav").flatten_all().unwrap(),
            if config.full {
                FULL_WAV_MAX_REL
            } else {
                WAV_MAX_REL
            },
            if config.full {
                FULL_WAV_MAX_ABS
            } else {
                WAV_MAX_ABS
            },
        );
    }
}
