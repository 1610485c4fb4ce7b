import Tensor

/// Reconstruction targets and the patch layouts the two decoders predict in.
public enum PixelTargets {
    /// MAE's patch vectors, ordered (py, px, c) (`einsum('nchpwq->nhwpqc')`): (B, N, p·p·C).
    public static func patchifyChannelsLast(_ images: Tensor, patch p: Int) -> Tensor {
        let (b, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let (gh, gw) = (h / p, w / p)
        let dim = p * p * c
        return Tensor(shape: [b, gh * gw, dim]) { out in
            images.withPointer { src in
                for bi in 0..<b { for i in 0..<gh { for j in 0..<gw {
                    let dst = out + ((bi * gh + i) * gw + j) * dim
                    for py in 0..<p { for px in 0..<p { for ch in 0..<c {
                        dst[(py * p + px) * c + ch] = src[((bi * c + ch) * h + i * p + py) * w + j * p + px]
                    } } }
                } } }
            }
        }
    }

    /// Inverse of `patchifyChannelsLast`.
    public static func unpatchifyChannelsLast(_ patches: Tensor, patch p: Int, channels c: Int, height h: Int, width w: Int) -> Tensor {
        let b = patches.shape[0]
        let (gh, gw) = (h / p, w / p)
        let dim = p * p * c
        return Tensor(shape: [b, c, h, w]) { out in
            patches.withPointer { src in
                for bi in 0..<b { for i in 0..<gh { for j in 0..<gw {
                    let s = src + ((bi * gh + i) * gw + j) * dim
                    for py in 0..<p { for px in 0..<p { for ch in 0..<c {
                        out[((bi * c + ch) * h + i * p + py) * w + j * p + px] = s[(py * p + px) * c + ch]
                    } } }
                } } }
            }
        }
    }

    /// Standardizes each row of `groups` consecutive groups of `size` values:
    /// (x − mean) / √(var + eps). MAE: one group of all p·p·C values, unbiased variance, eps 1e-6.
    /// BootMAE: C groups of p·p values (per channel), biased variance, eps 1e-5.
    public static func normalized(_ patches: Tensor, groupSize size: Int, unbiased: Bool, eps: Float) -> Tensor {
        let groups = patches.count / size
        return Tensor(shape: patches.shape) { out in
            patches.withPointer { src in
                for g in 0..<groups {
                    let x = src + g * size, y = out + g * size
                    let mean = Vector.sum(x, size) / Float(size)
                    let variance = Vector.sumSquaredDeviation(x, size, from: mean) / Float(unbiased ? size - 1 : size)
                    let inv = 1 / (variance + eps).squareRoot()
                    for k in 0..<size { y[k] = (x[k] - mean) * inv }
                }
            }
        }
    }

    /// Per-patch (mean, std) of each group, to undo `normalized` for display.
    public static func statistics(_ patches: Tensor, groupSize size: Int, unbiased: Bool, eps: Float) -> [(mean: Float, std: Float)] {
        let groups = patches.count / size
        return patches.withPointer { src in
            (0..<groups).map { g in
                let x = src + g * size
                let mean = Vector.sum(x, size) / Float(size)
                let variance = Vector.sumSquaredDeviation(x, size, from: mean) / Float(unbiased ? size - 1 : size)
                return (mean, (variance + eps).squareRoot())
            }
        }
    }
}
