import XCTest
import Tensor
import ViT
import Checkpoint
import TestSupport

/// A whole encoder with its Linear layers on each bf16 kernel, against PyTorch's fp32 tokens (the
/// fixture). The AMX kernel runs through its C model (`bf16-amx-model`) on any CPU, so its
/// integration (row blocks, padding, column groups inside real layers) is checked here too.
///
/// Tolerances: bf16 rounds each GEMM input to 8 significant bits, so against fp32 the tokens move
/// by ~2⁻⁹ relative per layer: relative error ≤ 1e-2 (max|Δ| / max|ref|; 3.5e-3 measured), token cosine ≥ 0.9999.
/// (Two bf16 kernels differ by more than fp32 summation order once a layer's output is rounded
/// again: an element near a bf16 rounding boundary goes either way. Single GEMMs are compared
/// kernel against kernel in BF16GEMMTests.)
final class BF16EncoderTests: XCTestCase {
    func tokens(_ kernel: InferenceKernel?, images: Tensor) throws -> Tensor {
        let model = try ModelDirectory.loadEncoder(Fixtures.url("encoders/timm_qkv_cls"))
        if let kernel { XCTAssertTrue(model.packForInference(releasingPlainValues: true, kernel: kernel)) }
        XCTAssertEqual(model.inferenceKernel, kernel ?? .fp32BLAS)
        return model.infer(images)
    }

    func cosines(_ a: Tensor, _ b: Tensor, rows: Int) -> [Double] {
        let d = a.count / rows
        return (0..<rows).map { i in
            var (dot, aa, bb) = (0.0, 0.0, 0.0)
            for j in 0..<d {
                let (x, y) = (Double(a.data[i * d + j]), Double(b.data[i * d + j]))
                (dot, aa, bb) = (dot + x * y, aa + x * x, bb + y * y)
            }
            return dot / (aa * bb).squareRoot()
        }
    }

    func testEveryBF16KernelStaysCloseToPyTorchFP32() throws {
        let io = try SafeTensorsFile(contentsOf: Fixtures.url("encoders/timm_qkv_cls/io.safetensors"))
        let images = try io.tensor("images"), reference = try io.tensor("tokens")
        let kernels = [InferenceKernel.bf16AVX512, .bf16AMX, .bf16AMXModel].filter(\.runsHere)
        for kernel in kernels {
            let t = try tokens(kernel, images: images)
            let err = relativeError(t, reference)
            print("\(kernel.rawValue): tokens vs PyTorch fp32, relative error \(err)")
            XCTAssertLessThanOrEqual(err, 1e-2, "\(kernel) vs PyTorch fp32")
            XCTAssertGreaterThan(err, 1e-6, "\(kernel): as exact as fp32, so not running bf16?")
            let rows = reference.shape[0] * reference.shape[1]  // every token of every image
            XCTAssertGreaterThanOrEqual(cosines(t, reference, rows: rows).min() ?? 0, 0.9999, "\(kernel)")
        }
    }
}
