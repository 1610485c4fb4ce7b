import Foundation

/// What a training run says when its loss stops being a number. The step is refused before the
/// optimizer touches anything, so the run folder keeps any checkpoint saved before it; but resuming
/// with the same recipe replays the same batches and masks into the same divergence, and `--resume`
/// refuses a changed learning rate, so the advice is a new run.
enum Divergence {
    /// `step` counts the optimizer steps done before the one whose loss was `loss`.
    static func message(loss: Float, step: Int, totalSteps: Int, lr: Float, lrFlags: String = "--lr") -> String {
        "the loss became \(loss.isNaN ? "NaN" : "\(loss)") in step \(step + 1) of \(totalSteps) (learning rate \(String(format: "%.3g", lr))): "
            + "training diverged. Start a new run with a lower \(lrFlags) or more --warmup-epochs (resuming would "
            + "repeat the same steps); the run folder keeps its last checkpoint as it was, if one was saved (every "
            + "--checkpoint-every steps)"
    }
}
