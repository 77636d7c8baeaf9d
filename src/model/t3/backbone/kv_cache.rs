//! Keys and values of every layer, allocated once per generation so that a decode step writes
//! in place instead of concatenating (and reallocating) the whole history.

use candle_core::{DType, Device, Result, Tensor};

pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Room for `capacity` positions of `batch` rows in each of `layers` layers.
    pub fn new(
        layers: usize,
        (batch, heads, head_dim): (usize, usize, usize),
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let shape = (batch, heads, capacity, head_dim);
        let zeros = || Tensor::zeros(shape, dtype, device);
        Ok(Self {
            keys: (0..layers).map(|_| zeros()).collect::<Result<_>>()?,
            values: (0..layers).map(|_| zeros()).collect::<Result<_>>()?,
            len: 0,
            capacity,
        })
    }

    /// A cache for `rows` rows and `capacity` positions that starts with this one-row cache's
    /// positions in every row.
    pub fn fork(&self, rows: usize, capacity: usize) -> Result<Self> {
        let Some(first) = self.keys.first() else {
            candle_core::bail!("a cache without layers cannot be forked");
        };
        let (batch, heads, _, head_dim) = first.dims4()?;
        if batch != 1 {
            candle_core::bail!("only a one-row cache can be forked");
        }
        let mut forked = Self::new(
            self.keys.len(),
            (rows, heads, head_dim),
            capacity,
            first.dtype(),
            first.device(),
        )?;
        let stored = |t: &Tensor| t.narrow(2, 0, self.len)?.repeat((rows, 1, 1, 1));
        for (layer, (k, v)) in self.keys.iter().zip(&self.values).enumerate() {
            forked.append(layer, &stored(k)?, &stored(v)?)?;
        }
        forked.commit(self.len);
        Ok(forked)
    }

    /// Positions already stored (the offset of the next input).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fails before a forward pass that would not fit.
    pub fn check_room(&self, new: usize) -> Result<()> {
        if self.len + new > self.capacity {
            candle_core::bail!(
                "the sequence would reach {} positions; the cache holds {}",
                self.len + new,
                self.capacity
            );
        }
        Ok(())
    }

    /// Stores `k`, `v` (B, H, T, D) of `layer` after the committed positions and returns views
    /// of everything up to them.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let new = k.dim(2)?;
        self.check_room(new)?;
        self.keys[layer].slice_set(k, 2, self.len)?;
        self.values[layer].slice_set(v, 2, self.len)?;
        Ok((
            self.keys[layer].narrow(2, 0, self.len + new)?,
            self.values[layer].narrow(2, 0, self.len + new)?,
        ))
    }

    /// Marks `new` positions, written to every layer, as stored.
    pub fn commit(&mut self, new: usize) {
        self.len += new;
    }
}
