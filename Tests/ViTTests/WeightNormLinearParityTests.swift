import XCTest
import Tensor
import ViT
import TestSupport

/// `WeightNormLinear` against `torch.nn.utils.weight_norm(nn.Linear(12, 20, bias=False))`
/// (tools/reference/make_objective_fixtures.py). Tolerance 1e-5 relative, as for single ops.
final class WeightNormLinearParityTests: XCTestCase {
    let tol: Float = 1e-5

    func check(_ ours: Tensor, _ ref: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, ref.count, "\(what): element count", file: file, line: line)
        let err = relativeError(ours, ref)
        XCTAssertLessThanOrEqual(err, tol, "\(what): relative error \(err)", file: file, line: line)
    }

    func layer(_ fixture: String, trainableScale: Bool) throws -> (WeightNormLinear, ParameterList) {
        let f = try Fixtures.file(fixture)
        var params = ParameterList()
        let v = try f.tensor("weight_v")
        let layer = WeightNormLinear(v.shape[1], v.shape[0], trainableScale: trainableScale, name: "last_layer", into: &params)
        try loadParameters(params, from: f, prefix: "", stripping: "last_layer.")
        return (layer, params)
    }

    func testTrainableScale() throws {
        let f = try Fixtures.file("ops/weight_norm_linear.safetensors")
        let (layer, params) = try layer("ops/weight_norm_linear.safetensors", trainableScale: true)
        XCTAssertEqual(params.names, ["last_layer.weight_g", "last_layer.weight_v"])
        XCTAssertEqual(layer.weightG.shape, [20, 1])
        check(layer.normalizedWeight().weight, try f.tensor("weight"), "weight")
        let (y, cache) = layer.forward(try f.tensor("x"))
        check(y, try f.tensor("y"), "y")
        check(layer.infer(try f.tensor("x")), try f.tensor("y"), "infer")
        let dx = layer.backward(try f.tensor("dy"), cache: cache)
        check(dx, try f.tensor("dx"), "dx")
        check(layer.weightV.grad, try f.tensor("dweight_v"), "dweight_v")
        check(layer.weightG.grad, try f.tensor("dweight_g"), "dweight_g")
    }

    /// iBOT's `norm_last_layer`: g stays 1 and gets no gradient; V's gradient is unchanged in form.
    func testFrozenScale() throws {
        let f = try Fixtures.file("ops/weight_norm_linear_frozen.safetensors")
        let (layer, _) = try layer("ops/weight_norm_linear_frozen.safetensors", trainableScale: false)
        XCTAssertFalse(layer.weightG.trainable)
        XCTAssertEqual(layer.weightG.value.data, [Float](repeating: 1, count: 20))
        let (y, cache) = layer.forward(try f.tensor("x"))
        check(y, try f.tensor("y"), "y")
        check(layer.backward(try f.tensor("dy"), cache: cache), try f.tensor("dx"), "dx")
        check(layer.weightV.grad, try f.tensor("dweight_v"), "dweight_v")
        XCTAssertEqual(layer.weightG.grad.data, [Float](repeating: 0, count: 20), "no gradient for a frozen g")
    }

    /// Gradients accumulate (+=) like every other layer's.
    func testGradientsAccumulate() throws {
        let f = try Fixtures.file("ops/weight_norm_linear.safetensors")
        let (layer, _) = try layer("ops/weight_norm_linear.safetensors", trainableScale: true)
        let (_, cache) = layer.forward(try f.tensor("x"))
        for _ in 0..<2 { _ = layer.backward(try f.tensor("dy"), cache: cache) }
        var twice = try f.tensor("dweight_v")
        twice.scale(by: 2)
        check(layer.weightV.grad, twice, "2 × dweight_v")
    }
}
