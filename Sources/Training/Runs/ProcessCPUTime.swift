import Foundation

/// CPU seconds this process has used so far, all threads together (`CLOCK_PROCESS_CPUTIME_ID`).
///
/// Runs record it beside their wall time because this machine is shared: another job stretches a
/// run's wall time but hardly its CPU time, so comparisons of training cost (LoMaR's half of MAE's
/// pretraining time) read the CPU figure.
public enum ProcessCPUTime {
    public static func seconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
