//! Port of chatterbox/models/t3/inference/alignment_stream_analyzer.py (0.1.7; removed upstream
//! later): the multilingual model's guard against hallucinated starts, long tails and
//! repetitions. It reads the attention of three aligned heads onto the text, tracks where in the
//! text the speech has got to, holds back the stop token until the end of the text is reached
//! and forces it when the alignment shows a bad ending.

/// (layer, head) pairs whose attention follows the text (`LLAMA_ALIGNED_HEADS`).
pub const LLAMA_ALIGNED_HEADS: [(usize, usize); 3] = [(12, 15), (13, 11), (9, 2)];

/// How long the reference remembers generated tokens for its repetition check.
const TOKEN_MEMORY: usize = 8;

/// What the analyzer does to this step's logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsAction {
    Keep,
    /// The stop token's logit becomes −2¹⁵: the text is not finished.
    SuppressEos,
    /// Every logit becomes −2¹⁵ but the stop token's, which becomes +2¹⁵.
    ForceEos,
}

pub struct AlignmentStreamAnalyzer {
    text_len: usize,
    /// Rows of the alignment (speech frames × text tokens), row-major.
    alignment: Vec<f32>,
    rows: usize,
    curr_frame_pos: usize,
    text_position: usize,
    started: bool,
    complete: bool,
    completed_at: Option<usize>,
    generated_tokens: Vec<u32>,
}

impl AlignmentStreamAnalyzer {
    pub fn new(text_len: usize) -> Self {
        Self {
            text_len,
            alignment: Vec::new(),
            rows: 0,
            curr_frame_pos: 0,
            text_position: 0,
            started: false,
            complete: false,
            completed_at: None,
            generated_tokens: Vec::new(),
        }
    }

    /// The first call takes the attention rows of the prefill's speech positions, later calls
    /// the one row of the new token; `chunk` holds those rows over the text columns (averaged
    /// over the aligned heads), row-major. `last_token` is the token fed to produce them.
    pub fn step(&mut self, chunk: &[f32], last_token: u32) -> LogitsAction {
        let s = self.text_len;
        if s == 0 || !chunk.len().is_multiple_of(s) {
            return LogitsAction::Keep;
        }
        let mut chunk = chunk.to_vec();
        // Monotonic mask of the reference: a frame may not look further than its own index.
        for row in chunk.chunks_mut(s) {
            for value in row.iter_mut().skip(self.curr_frame_pos + 1) {
                *value = 0.0;
            }
        }
        let chunk_rows = chunk.len() / s;
        self.alignment.extend_from_slice(&chunk);
        self.rows += chunk_rows;

        let cur_text_posn = chunk.chunks(s).next_back().map_or(0, first_argmax);
        let delta = cur_text_posn as i64 - self.text_position as i64;
        if -4 < delta && delta < 7 {
            self.text_position = cur_text_posn;
        }

        let false_start = !self.started
            && (self.block_max(self.rows.saturating_sub(2), s.saturating_sub(2)..s) > 0.1
                || self.block_max(0, 0..s.min(4)) < 0.5);
        self.started = !false_start;

        self.complete = self.complete || self.text_position + 3 >= s;
        if self.complete && self.completed_at.is_none() {
            self.completed_at = Some(self.rows);
        }
        let (long_tail, alignment_repetition) = match self.completed_at {
            Some(done) if self.complete => (
                self.tail_activation(done) >= 5.0,
                self.repetition_activation(done) > 5.0,
            ),
            _ => (false, false),
        };

        self.generated_tokens.push(last_token);
        if self.generated_tokens.len() > TOKEN_MEMORY {
            self.generated_tokens.remove(0);
        }
        let n = self.generated_tokens.len();
        let token_repetition =
            n >= 3 && self.generated_tokens[n - 1] == self.generated_tokens[n - 2];

        self.curr_frame_pos += 1;
        if long_tail || alignment_repetition || token_repetition {
            tracing::warn!(
                long_tail,
                alignment_repetition,
                token_repetition,
                "alignment guard forces the stop token"
            );
            LogitsAction::ForceEos
        } else if cur_text_posn + 3 < s && s > 5 {
            LogitsAction::SuppressEos
        } else {
            LogitsAction::Keep
        }
    }

    fn value(&self, row: usize, col: usize) -> f32 {
        self.alignment[row * self.text_len + col]
    }

    /// Max over rows `first_row..` and the given columns.
    fn block_max(&self, first_row: usize, cols: std::ops::Range<usize>) -> f32 {
        (first_row..self.rows)
            .flat_map(|r| cols.clone().map(move |c| (r, c)))
            .map(|(r, c)| self.value(r, c))
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// `A[completed_at:, -3:].sum(dim=0).max()`: how long the last text tokens have been held.
    fn tail_activation(&self, done: usize) -> f32 {
        let s = self.text_len;
        (s.saturating_sub(3)..s)
            .map(|c| (done..self.rows).map(|r| self.value(r, c)).sum::<f32>())
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// `A[completed_at:, :-5].max(dim=1).values.sum()`: attention back on earlier text after
    /// the end was reached. With five or fewer text tokens there is nothing earlier to look at
    /// (the reference raises on the empty reduction; this counts it as no repetition).
    fn repetition_activation(&self, done: usize) -> f32 {
        let cols = self.text_len.saturating_sub(5);
        if cols == 0 {
            return 0.0;
        }
        (done..self.rows)
            .map(|r| {
                (0..cols)
                    .map(|c| self.value(r, c))
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .sum()
    }
}

/// torch.argmax: the first index of the maximum.
fn first_argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}
