import Tensor
import ViT

/// PeCo's perceptual loss (Dong et al., arXiv 2111.12710 v3 §3: "a self-supervised transformer
/// model for deep feature extraction"): the mean squared distance between the features of an image
/// and of its reconstruction, taken at several blocks of a frozen encoder of our own (BootMAE's or
/// iBOT's), summed over those blocks:
///
///   L_per(x, x̂) = Σ_l 1/(B·T·D) · Σ ‖f_l(x) − f_l(x̂)‖²
///
/// with f_l the output of block l for all T = 1 + N tokens (cls and patches), averaged over the
/// B images of the whole batch. It is zero when x̂ = x and symmetric in x and x̂. No VGG/LPIPS:
/// the paper argues for self-supervised transformer features, and we import no weights.
///
/// The network is frozen: nothing here updates it, and it is never in an optimizer's list. Its
/// backward only carries the gradient to x̂ (its weights' gradients are discarded each call).
public struct PerceptualLoss: Sendable {
    public let network: VisionTransformer
    /// 0-based block indices whose outputs are compared.
    public let layers: [Int]
    /// What the inputs' normalization maps to the network's: x_net = x·scale[c] + shift[c].
    let scale: [Float]
    let shift: [Float]
    /// `forwardMasked` with nothing masked is the encoder with taps; this embedding is never used.
    let unusedMaskEmbed: Parameter

    /// `inputMean` / `inputStd`: the normalization of the images this loss will be given (the
    /// tokenizer's); the network's own comes from its config.
    public init(network: VisionTransformer, layers: [Int], inputMean: [Float], inputStd: [Float]) {
        precondition(!layers.isEmpty && layers.allSatisfy { (0..<network.blocks.count).contains($0) },
                     "perceptual layers \(layers) outside the network's \(network.blocks.count) blocks")
        self.network = network
        self.layers = layers
        let c = network.config
        // x_net = (x·std_in + mean_in − mean_net) / std_net
        scale = (0..<c.inChans).map { inputStd[$0] / c.std[$0] }
        shift = (0..<c.inChans).map { (inputMean[$0] - c.mean[$0]) / c.std[$0] }
        unusedMaskEmbed = Parameter(Tensor(zeros: [1, c.embedDim]), trainable: false)
    }

    /// The default taps: about four evenly spaced blocks ending at the last (depth 12: 3, 6, 9, 12;
    /// depth 6: 2, 4, 6), as 0-based indices.
    public static func defaultLayers(depth: Int) -> [Int] {
        let count = depth % 4 == 0 ? 4 : min(3, depth)
        return Array(Set((1...count).map { Int((Double(depth) * Double($0) / Double(count)).rounded()) - 1 })).sorted()
    }

    func toNetwork(_ images: Tensor) -> Tensor {
        var x = images
        let (b, c) = (images.shape[0], images.shape[1])
        let plane = images.count / (b * c)
        x.withMutablePointer { p in
            for i in 0..<b { for ch in 0..<c {
                let base = p + (i * c + ch) * plane
                for j in 0..<plane { base[j] = base[j] * scale[ch] + shift[ch] }
            } }
        }
        return x
    }

    func features(_ images: Tensor) -> (VisionTransformer.MaskedEncoding, VisionTransformer.MaskedCache) {
        let flags = [Bool](repeating: false, count: images.shape[0] * network.config.numPatches)
        return network.forwardMasked(toNetwork(images), mask: flags, maskEmbed: unusedMaskEmbed, featureLayers: layers)
    }

    /// Each image's loss (no gradient): Σ_l mean over its tokens and channels of (f_l(a) − f_l(b))².
    /// What PeCo's shift-versus-blur comparison ranks images by.
    public func distances(_ a: Tensor, _ b: Tensor) -> [Float] {
        precondition(a.shape == b.shape, "perceptual distances: \(a.shape) against \(b.shape)")
        let (fa, fb) = (features(a).0, features(b).0)
        let images = a.shape[0]
        return (0..<images).map { i in
            layers.reduce(Float(0)) { total, l in
                let (x, y) = (fa.features[l]!, fb.features[l]!)
                let per = x.count / images
                var sum: Double = 0
                for j in (i * per)..<((i + 1) * per) { let diff = x.data[j] - y.data[j]; sum += Double(diff * diff) }
                return total + Float(sum / Double(per))
            }
        }
    }

    /// The loss of `reconstruction` against `target` (both (B, C, H, W) in the input
    /// normalization), averaged over `lossBatch` images (the whole batch when these are a shard of
    /// it), and its gradient with respect to `reconstruction` when `backward`.
    public func forwardBackward(reconstruction: Tensor, target: Tensor, lossBatch: Int? = nil,
                                backward: Bool = true) -> (loss: Float, grad: Tensor?) {
        precondition(reconstruction.shape == target.shape, "perceptual loss: \(reconstruction.shape) against \(target.shape)")
        let (fx, _) = features(target)
        let (fr, cache) = features(reconstruction)
        let images = Float(lossBatch ?? target.shape[0])
        var total: Double = 0
        var dFeatures: [Int: Tensor] = [:]
        for l in layers {
            let (a, b) = (fr.features[l]!, fx.features[l]!)
            let normalizer = images * Float(a.count / a.shape[0])
            var sum: Double = 0
            let grad = Tensor(shape: a.shape) { g in
                a.withPointer { ap in b.withPointer { bp in
                    for i in 0..<a.count {
                        let diff = ap[i] - bp[i]
                        sum += Double(diff * diff)
                        g[i] = 2 * diff / normalizer
                    }
                } }
            }
            total += sum / Double(normalizer)
            dFeatures[l] = grad
        }
        guard backward else { return (Float(total), nil) }
        // The frozen network's own gradients are not wanted; clear them so they never pile up.
        network.parameters.zeroGrads()
        let dNetworkInput = network.backwardMasked(dLatent: Tensor(zeros: fr.latent.shape), dFeatures: dFeatures, cache: cache)
        // Back through x_net = x·scale + shift.
        var grad = dNetworkInput
        let (b, c) = (grad.shape[0], grad.shape[1])
        let plane = grad.count / (b * c)
        grad.withMutablePointer { p in
            for i in 0..<b { for ch in 0..<c {
                let base = p + (i * c + ch) * plane
                for j in 0..<plane { base[j] *= scale[ch] }
            } }
        }
        return (Float(total), grad)
    }
}
