/// Images (B, C, H, W) ↔ patch vectors (B, N, C·p·p), N = (H/p)·(W/p), patch n = i·(W/p) + j.
/// A patch vector is ordered (c, py, px): the layout of a Conv2d(kernel = stride = p) weight
/// flattened per output channel, so patch embedding is a plain linear layer.
public enum PatchOps {
    public static func patchify(_ images: Tensor, patch p: Int) -> Tensor {
        let (b, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        precondition(h % p == 0 && w % p == 0, "patchify: image \(h)×\(w) is not a multiple of patch \(p)")
        let (gh, gw) = (h / p, w / p)
        let dim = c * p * p
        return Tensor(shape: [b, gh * gw, dim]) { out in
            images.withPointer { src in
                for bi in 0..<b { for i in 0..<gh { for j in 0..<gw {
                    let dst = out + ((bi * gh + i) * gw + j) * dim
                    for ch in 0..<c { for py in 0..<p {
                        let row = src + ((bi * c + ch) * h + i * p + py) * w + j * p
                        (dst + (ch * p + py) * p).update(from: row, count: p)
                    } }
                } } }
            }
        }
    }

    /// The inverse (and adjoint) of `patchify`.
    public static func unpatchify(_ patches: Tensor, patch p: Int, channels c: Int, height h: Int, width w: Int) -> Tensor {
        let b = patches.shape[0]
        let (gh, gw) = (h / p, w / p)
        let dim = c * p * p
        precondition(patches.shape == [b, gh * gw, dim], "unpatchify: \(patches.shape) vs \(c)×\(h)×\(w)/\(p)")
        return Tensor(shape: [b, c, h, w]) { out in
            patches.withPointer { src in
                for bi in 0..<b { for i in 0..<gh { for j in 0..<gw {
                    let s = src + ((bi * gh + i) * gw + j) * dim
                    for ch in 0..<c { for py in 0..<p {
                        (out + ((bi * c + ch) * h + i * p + py) * w + j * p).update(from: s + (ch * p + py) * p, count: p)
                    } }
                } } }
            }
        }
    }
}
