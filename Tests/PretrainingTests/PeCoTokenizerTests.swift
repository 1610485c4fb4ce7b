import XCTest
import Tensor
import ViT
@testable import Objectives

/// PeCo's perceptual loss and tokenizer: closed-form properties, central differences, sharding.
final class PeCoTokenizerTests: XCTestCase {
    /// A small random ViT as the frozen perceptual network (8 px, patch 2: 16 patches).
    static func perceptualNetwork(seed: UInt64 = 3) -> VisionTransformer {
        let config = ViTConfig(imgSize: 8, patchSize: 2, inChans: 1, embedDim: 16, depth: 3, numHeads: 2, mlpRatio: 2, qkvBias: .qkv,
                               layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5], posEmbed: .sincosMAE)
        let net = VisionTransformer(config: config, parts: .init(norm: false))
        var rng = SeededRandom(seed: seed)
        for (name, p) in net.parameters.entries where p.trainable {
            let gain: Float = p.value.rank == 1 && name.hasSuffix(".weight") ? 1 : 0
            p.fill { gain + rng.normal() * 0.3 }
        }
        return net
    }

    static func images(_ b: Int, seed: UInt64, size: Int = 8) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor(shape: [b, 1, size, size], data: (0..<(b * size * size)).map { _ in rng.normal() })
    }

    /// The tokenizer normalizes with mean 0.2 / std 0.4, the network with 0.5 / 0.5: the loss maps between them.
    func makeLoss() -> PerceptualLoss {
        PerceptualLoss(network: Self.perceptualNetwork(), layers: [0, 2], inputMean: [0.2], inputStd: [0.4])
    }

    func testZeroOnIdenticalInputsAndSymmetric() {
        let loss = makeLoss()
        let x = Self.images(3, seed: 1), y = Self.images(3, seed: 2)
        XCTAssertEqual(loss.forwardBackward(reconstruction: x, target: x, backward: false).loss, 0)
        let (same, grad) = loss.forwardBackward(reconstruction: x, target: x)
        XCTAssertEqual(same, 0)
        XCTAssertTrue(grad!.data.allSatisfy { $0 == 0 }, "no gradient at the minimum")
        let xy = loss.forwardBackward(reconstruction: x, target: y, backward: false).loss
        let yx = loss.forwardBackward(reconstruction: y, target: x, backward: false).loss
        XCTAssertGreaterThan(xy, 0)
        XCTAssertEqual(xy, yx)
        // Per-image distances average to the batch loss.
        let d = loss.distances(x, y)
        XCTAssertEqual(d.reduce(0, +) / 3, xy, accuracy: 1e-5 * xy)
        XCTAssertEqual(loss.distances(x, x), [0, 0, 0])
    }

    /// The default taps: depth 12 → blocks 3, 6, 9, 12; depth 6 → 2, 4, 6 (1-based).
    func testDefaultLayers() {
        XCTAssertEqual(PerceptualLoss.defaultLayers(depth: 12), [2, 5, 8, 11])
        XCTAssertEqual(PerceptualLoss.defaultLayers(depth: 6), [1, 3, 5])
        XCTAssertEqual(PerceptualLoss.defaultLayers(depth: 1), [0])
    }

    /// d L / d reconstruction against central differences (Float64 accumulation of the loss keeps
    /// the quotient's rounding near 1e-6 at h = 1e-2), and the network's weights untouched.
    func testGradientAgainstFiniteDifferences() {
        let loss = makeLoss()
        let before = loss.network.parameters.entries.map { $0.parameter.value }
        let x = Self.images(2, seed: 4), target = Self.images(2, seed: 5)
        let (_, grad) = loss.forwardBackward(reconstruction: x, target: target, lossBatch: 4)
        let g = grad!
        let h: Float = 1e-2
        var rng = SeededRandom(seed: 6)
        var worst: Double = 0
        let scale = Double(g.data.map(abs).max()!)
        for _ in 0..<24 {
            let i = Int(rng.next() % UInt64(x.count))
            var up = x, down = x
            up.data[i] += h
            down.data[i] -= h
            let numeric = (Double(loss.forwardBackward(reconstruction: up, target: target, lossBatch: 4, backward: false).loss)
                - Double(loss.forwardBackward(reconstruction: down, target: target, lossBatch: 4, backward: false).loss)) / Double(2 * h)
            worst = max(worst, abs(numeric - Double(g.data[i])) / scale)
        }
        XCTAssertGreaterThan(scale, 1e-4)
        XCTAssertLessThan(worst, 1e-2, "perceptual gradient vs central differences (relative to the largest)")
        XCTAssertEqual(loss.network.parameters.entries.map { $0.parameter.value }, before, "the perceptual network is frozen")
    }

    func makeTokenizer() -> PeCoTokenizer {
        let shape = BackboneShape(imgSize: 8, patchSize: 2, channels: 1, embedDim: 16, depth: 1, numHeads: 2, decoderDim: 16,
                                  decoderDepth: 1, deepDecoderDepth: 1)
        var (encoder, _) = try! PeCoTokenizer.configure(shape, maskRatio: 0, flags: ObjectiveFlagValues())
        encoder.depth = 1
        let net = Self.perceptualNetwork()
        let settings = PeCoTokenizer.Settings(codebookSize: 8, codeDim: 4, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2,
                                              perceptualEncoder: net.config, perceptualLayers: [0, 2])
        let tokenizer = PeCoTokenizer(encoder: encoder, settings: settings)
        var rng = SeededRandom(seed: 9)
        ParameterInit(classTokenStd: 0.02, truncatedMaskTokens: false, xavierPerQKVBlock: false).initialize(tokenizer.parameters, rng: &rng)
        tokenizer.quantizer.codebook.fill { rng.normal() }
        for (name, p) in tokenizer.perceptual!.network.parameters.entries { p.value = net.parameters[name]!.value }
        return tokenizer
    }

    /// Decoder-side gradients (`decoder*`, `post_quant*`: pixel + λ·perceptual, the codes do not
    /// depend on them) against central differences of the real loss, and the loss's parts adding
    /// up to its total. The encoder side is `testEncoderGradientsAreTheStraightThroughEstimators`'s.
    func testTokenizerDecoderGradients() {
        let tokenizer = makeTokenizer()
        let images = Self.images(2, seed: 11)
        var rng = SeededRandom(seed: 12)
        let plan = TokenizerPlan.draw(codes: 8, batch: 2, patches: 16, rng: &rng)
        var first = true
        var out: PeCoTokenizer.Output?
        func loss() -> Float {
            defer { first = false }
            let result = tokenizer.step(images, plan: plan, lambdaPerceptual: 0.5, beta: 0.25, backward: first)
            if first { out = result }
            return result.total
        }
        // h = 1e-2 and tol 2e-2: this loss adds the perceptual term through a second network, whose float32
        // sums round a little more than the plain ViT's.
        assertGradientsMatchCentralDifferences(tokenizer.parameters, only: { $0.hasPrefix("decoder") || $0.hasPrefix("post_quant") },
                                               h: 1e-2, tol: 2e-2, minimumChecked: 20, loss: loss)
        let analytic = out!
        XCTAssertGreaterThan(analytic.perceptual, 0)
        XCTAssertEqual(analytic.total, analytic.pixel + analytic.commitment + 0.5 * analytic.perceptual)
        XCTAssertEqual(loss(), analytic.total, "the same forward gives the same loss")
    }

    /// The encoder side (`quant_proj` and every encoder tensor below it) through the whole
    /// tokenizer. The real loss is piecewise constant in z but for the commitment term (a code is
    /// a step function of z), so its difference quotients see only commitment; the straight-through
    /// estimator claims the gradient of the surrogate in which the decoder consumes z plus a
    /// constant, the forward value of z + sg[q − z]:
    ///
    ///   S(θ) = pixel(D(z(θ) + c)) + λ·perceptual(D(z(θ) + c)) + β·Σ(z(θ) − q₀)²/n,   c = q₀ − z(θ₀),
    ///
    /// with q₀ the codes chosen at θ₀ and n = B·N·d. S is assembled here from forward passes only
    /// (encoder, decoder, the perceptual loss's forward; pixel MSE and commitment summed in
    /// Float64 by this test), equals the real loss at θ₀, and its central differences must match
    /// the gradients `step` accumulates: 4 coordinates of each of the 19 encoder-side tensors,
    /// h = 1e-2, each tensor on its own scale (`assertGradientsMatchCentralDifferences`). Worst
    /// relative error measured 2.5e-3 (`cls_token`; every other tensor ≤ 1.1e-4), hence tol 1e-2.
    /// Every perturbed point keeps every code index (asserted), so there the real loss's codes
    /// are still q₀. Broken on purpose in `VectorQuantizer.backward`, both halves fail every one of
    /// the 19 tensors: the pass-through lost (d z = commitment gradient only) by 0.56–1.2 relative,
    /// the commitment gradient lost (d z = d z_q only) by 0.012–0.30.
    func testEncoderGradientsAreTheStraightThroughEstimators() {
        let tokenizer = makeTokenizer()
        let images = Self.images(2, seed: 11)
        var rng = SeededRandom(seed: 12)
        let plan = TokenizerPlan.draw(codes: 8, batch: 2, patches: 16, rng: &rng)
        let (lambda, beta): (Float, Float) = (0.5, 0.25)
        let (b, n, d) = (2, 16, tokenizer.settings.codeDim)
        // A codebook whose nearest code wins by at least 0.1 in distance for every row (measured
        // 0.149; the codebook of `makeTokenizer` has a row within 0.002 of a tie, which the h = 1e-2
        // steps cross), so no perturbed point changes a code.
        var codebookRNG = SeededRandom(seed: 24)
        tokenizer.quantizer.codebook.fill { codebookRNG.normal() }
        let z0 = tokenizer.encode(images).z
        XCTAssertGreaterThan(Self.smallestCodeMargin(z0, tokenizer.quantizer), 0.1)
        let codes0 = tokenizer.quantizer.nearest(z0)
        let q0 = tokenizer.quantizer.lookup(codes0)
        let offset = Tensor(shape: z0.shape, data: zip(q0.data, z0.data).map { $0 - $1 })
        var perturbedPoints = 0
        func surrogate() -> Float {
            let z = tokenizer.encode(images).z
            XCTAssertEqual(tokenizer.quantizer.nearest(z), codes0, "h moved a row to another code: S is no longer the real loss there")
            let image = tokenizer.decodeQuantized((z + offset).reshaped([b, n, d])).image
            let pixel = zip(image.data, images.data).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(images.count)
            let commitment = Double(beta) * zip(z.data, q0.data).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(z.count)
            let perceptual = tokenizer.perceptual!.forwardBackward(reconstruction: image, target: images, backward: false).loss
            perturbedPoints += 1
            return Float(pixel + commitment + Double(lambda) * Double(perceptual))
        }

        let encoderSide = { (name: String) in !name.hasPrefix("decoder") && !name.hasPrefix("post_quant") }
        let checked = tokenizer.parameters.entries.filter { $0.parameter.trainable && encoderSide($0.name) }.map(\.name)
        XCTAssertTrue(checked.contains("quant_proj.weight") && checked.contains("quant_proj.bias") && checked.contains("patch_embed.proj.weight"))
        var first = true
        var analytic: PeCoTokenizer.Output?
        assertGradientsMatchCentralDifferences(tokenizer.parameters, only: encoderSide,
                                               coordinates: 4, h: 1e-2, tol: 1e-2, minimumChecked: 40) {
            guard first else { return surrogate() }
            first = false
            analytic = tokenizer.step(images, plan: plan, lambdaPerceptual: lambda, beta: beta)
            return analytic!.total
        }
        XCTAssertEqual(analytic!.indices, codes0)
        XCTAssertGreaterThan(analytic!.commitment, 0)
        XCTAssertEqual(surrogate(), analytic!.total, accuracy: 1e-5 * analytic!.total, "S is the real loss at θ₀")
        XCTAssertEqual(perturbedPoints, 2 * 4 * checked.count + 1, "two points per checked coordinate, and θ₀")
    }

    /// Over the rows of `z`: the distance to the second-nearest code minus that to the nearest.
    static func smallestCodeMargin(_ z: Tensor, _ quantizer: VectorQuantizer) -> Float {
        let (d, codebook) = (quantizer.dim, quantizer.codebook.value.data)
        return (0..<z.rows).map { r -> Float in
            let distances = (0..<quantizer.codes).map { k -> Float in
                (0..<d).reduce(Float(0)) { sum, c in let diff = z.data[r * d + c] - codebook[k * d + c]; return sum + diff * diff }.squareRoot()
            }.sorted()
            return distances[1] - distances[0]
        }.min()!
    }

    /// Sharded steps fill in each shard's restart candidates; their sums equal the whole batch's,
    /// and statistics add up.
    func testShardsAddUpToTheBatch() {
        let tokenizer = makeTokenizer()
        let images = Self.images(4, seed: 13)
        var rng = SeededRandom(seed: 12)
        let plan = TokenizerPlan.draw(codes: 8, batch: 4, patches: 16, rng: &rng)
        let whole = tokenizer.step(images, plan: plan, lambdaPerceptual: 0, beta: 0.25, backward: false)
        let a = tokenizer.step(images.batchSlice(0..<1), plan: plan.shard(0..<1), lambdaPerceptual: 0, beta: 0.25, backward: false, lossBatch: 4)
        let b = tokenizer.step(images.batchSlice(1..<4), plan: plan.shard(1..<4), lambdaPerceptual: 0, beta: 0.25, backward: false, lossBatch: 4)
        XCTAssertEqual(zip(a.candidates, b.candidates).map(+), whole.candidates)
        XCTAssertEqual(zip(a.counts, b.counts).map(+), whole.counts)
        XCTAssertEqual(whole.counts.reduce(0, +), 64)
        XCTAssertEqual(a.pixel + b.pixel, whole.pixel, accuracy: 1e-5)
        // Each candidate is the encoding of its (image, patch).
        let z = tokenizer.encode(images).z
        for (slot, row) in plan.candidates.enumerated() {
            XCTAssertEqual(Array(whole.candidates[(slot * 4)..<(slot * 4 + 4)]), Array(z.data[((row.image * 16 + row.patch) * 4)..<((row.image * 16 + row.patch) * 4 + 4)]))
        }
    }

    /// The codes are deterministic, the training step's (through `forward`) bit for bit, and decode
    /// to an image of the input's shape.
    func testCodesAreDeterministic() {
        let tokenizer = makeTokenizer()
        let images = Self.images(2, seed: 14)
        let codes = tokenizer.codes(images)
        var rng = SeededRandom(seed: 12)
        XCTAssertEqual(codes.count, 2)
        XCTAssertEqual(codes[0].count, 16)
        XCTAssertEqual(tokenizer.codes(images), codes)
        XCTAssertEqual(tokenizer.decode(codes).shape, [2, 1, 8, 8])
        let out = tokenizer.step(images, plan: TokenizerPlan.draw(codes: 8, batch: 2, patches: 16, rng: &rng), lambdaPerceptual: 0,
                                 beta: 0.25, backward: false)
        XCTAssertEqual(out.indices, codes.flatMap { $0 })
        XCTAssertEqual(tokenizer.project(tokenizer.encoder.infer(images)).z, tokenizer.encode(images).z, "infer is forward, bit for bit")
        XCTAssertEqual(out.reconstruction, tokenizer.decode(codes))
    }
}
