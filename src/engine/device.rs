//! Where the model runs and in which float type: `CHATTERBOX_DEVICE` and `CHATTERBOX_DTYPE`.

use std::str::FromStr;

use candle_core::{DType, Device};

/// The device the model thread opens on its first load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
    /// The first CUDA device when this build has CUDA support and one is present, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(Self::Cpu),
            "auto" => Ok(Self::Auto),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}; expected cpu, cuda, cuda:N or auto")),
        }
    }
}

impl DeviceChoice {
    pub fn open(self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => open_cuda(ordinal),
            Self::Auto => Ok(open_cuda(0).unwrap_or_else(|reason| {
                if cfg!(feature = "cuda") {
                    tracing::info!("no usable CUDA device ({reason}); running on the CPU");
                }
                Device::Cpu
            })),
        }
    }
}

/// candle's CUDA device, or why there is none. A binary that loads CUDA's libraries at run
/// time (tools/build-cuda.sh) panics inside cudarc on a host without them; that panic is
/// caught, without printing it, and becomes the reason. The hook is swapped only for this
/// call, made once per model load.
fn open_cuda(ordinal: usize) -> Result<Device, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    std::panic::set_hook(hook);
    match opened {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(candle_core::Error::NotCompiledWithCudaSupport)) => Err(format!(
            "CUDA device {ordinal} was asked for, but this build has no CUDA support (build \
             with `--features cuda`, or tools/build-cuda.sh)"
        )),
        Ok(Err(other)) => Err(format!("CUDA device {ordinal}: {other}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("cudarc panicked");
            // cudarc goes on to list every file name it tried.
            let message = message.split(" - searched").next().unwrap_or(message);
            Err(format!(
                "CUDA device {ordinal}: {message} (is the NVIDIA driver installed, and are \
                 cuBLAS and cuRAND on the library path?)"
            ))
        }
    }
}

/// `f32`, `f16` or `bf16`: the weights' and activations' type for T3 and S3Gen.
pub fn parse_dtype(s: &str) -> Result<DType, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" => Ok(DType::F32),
        "f16" | "float16" | "fp16" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(format!(
            "unknown dtype {other:?}; expected f32, f16 or bf16"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_dtypes_parse_with_clear_errors() {
        assert_eq!("CPU".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:1".parse(), Ok(DeviceChoice::Cuda(1)));
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        let error = "tpu".parse::<DeviceChoice>().unwrap_err();
        assert!(error.contains("cpu, cuda"), "{error}");
        assert_eq!(parse_dtype("BF16"), Ok(DType::BF16));
        assert!(parse_dtype("f64").unwrap_err().contains("f32, f16 or bf16"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_cuda_support_says_how_to_get_it() {
        let error = DeviceChoice::Cuda(0).open().unwrap_err();
        assert!(error.contains("--features cuda"), "{error}");
        assert!(DeviceChoice::Auto.open().unwrap().is_cpu());
    }
}
