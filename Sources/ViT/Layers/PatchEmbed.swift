import Tensor

/// Conv2d(in_chans, dim, kernel = stride = patch) as a linear map on (c, py, px)-ordered patch
/// vectors; the weight keeps the conv's (dim, C, p, p) shape so checkpoints load unchanged.
public struct PatchEmbed: Sendable {
    public let weight: Parameter
    public let bias: Parameter
    public let patch: Int
    public let channels: Int

    public struct Cache: Sendable { let patches: Tensor, imageShape: [Int] }

    public init(channels: Int, patch: Int, dim: Int, name: String, into params: inout ParameterList) {
        self.patch = patch
        self.channels = channels
        weight = Parameter(Tensor(zeros: [dim, channels, patch, patch]))
        bias = Parameter(Tensor(zeros: [dim]))
        params.add("\(name).weight", weight)
        params.add("\(name).bias", bias)
    }

    var matrix: Tensor { weight.value.reshaped([weight.shape[0], channels * patch * patch]) }

    /// images (B, C, H, W) → tokens (B, N, dim).
    public func forward(_ images: Tensor) -> (Tensor, Cache) {
        precondition(images.rank == 4 && images.shape[1] == channels,
                     "patch embed: expected (B, \(channels), H, W) images, got \(images.shape)")
        let patches = PatchOps.patchify(images, patch: patch)
        return (LinearOp.forward(patches, weight: matrix, bias: bias.value), Cache(patches: patches, imageShape: images.shape))
    }

    /// Accumulates weight/bias gradients; returns d images.
    public func backward(_ dy: Tensor, cache: Cache) -> Tensor {
        let dPatches = bias.withGradPointer { gb in
            LinearOp.backward(dy, input: cache.patches, weight: matrix, weightGrad: &weight.grad, biasGrad: gb)
        }
        let s = cache.imageShape
        return PatchOps.unpatchify(dPatches, patch: patch, channels: s[1], height: s[2], width: s[3])
    }
}
