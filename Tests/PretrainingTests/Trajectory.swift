import XCTest
import Tensor
import Objectives
import Checkpoint
import Training
import TestSupport

/// What the trajectory tests share: the comparison of the final state with a reference's, after
/// several iterations on fixed batches and plans through the trainer's own `PretrainUpdate.iterate`.
enum Trajectory {
    /// Every checkpointed tensor of `network` against `final.<name>` in `reference`, within `tolerance`
    /// of the reference tensor's largest entry, on the part `comparable` keeps. Asserts that every
    /// reference tensor was compared; returns how many were and the worst error.
    @discardableResult
    static func compareFinalState(_ network: PretrainingNetwork, with reference: SafeTensorsFile, tolerance: Float,
                                  comparable: (String, Tensor) -> Tensor = { $1 }, after steps: Int,
                                  file: StaticString = #filePath, line: UInt = #line) throws -> (count: Int, worst: Float, name: String) {
        var compared = 0, worst: (Float, String) = (0, "")
        for (name, p) in network.checkpointParameters.entries {
            let expected = try reference.tensor("final." + name)
            XCTAssertEqual(p.value.count, expected.count, name, file: file, line: line)
            let e = relativeError(comparable(name, p.value), comparable(name, expected))
            if e > worst.0 { worst = (e, name) }
            XCTAssertLessThanOrEqual(e, tolerance, "\(name) after \(steps) steps: relative error \(e)", file: file, line: line)
            compared += 1
        }
        XCTAssertEqual(compared, reference.entries.keys.filter { $0.hasPrefix("final.") }.count, "every reference tensor compared",
                       file: file, line: line)
        return (compared, worst.0, worst.1)
    }

    static func scheduleValue(_ report: StepReport, _ name: String) -> Float? { report.schedule.first { $0.name == name }?.value }

    /// "1.2e-07, …" for the printed summary.
    static func list(_ values: [Float]) -> String { values.map { String(format: "%.1e", $0) }.joined(separator: ", ") }
}
