/// One K×K window of an image's patch grid: grid rows top..<top+K, columns left..<left+K.
public struct TokenWindow: Sendable, Equatable {
    public var image: Int, top: Int, left: Int
    public init(image: Int, top: Int, left: Int) { self.image = image; self.top = top; self.left = left }
}

/// Regrouping K×K windows of the patch grid into a batch of windows, as LoMaR pretrains on
/// (junchen14/LoMaR models_lomar.py `generate_window_patches`: window tokens in row-major order,
/// (top + i)·W + left + j). Which image each window row comes from is the caller's list, so the
/// official pairing of images and windows can be reproduced exactly.
extension TokenOps {
    /// x (B, H·W, D) patch tokens in row-major grid order → (R, K², D), row r = `windows[r]`.
    public static func windows(_ x: Tensor, gridWidth w: Int, size k: Int, windows: [TokenWindow]) -> Tensor {
        let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2])
        check(windows, batch: b, tokens: n, gridWidth: w, size: k)
        return Tensor(shape: [windows.count, k * k, d]) { y in
            x.withPointer { xp in
                for (r, win) in windows.enumerated() {
                    // Each window row is k consecutive tokens of one grid row: one copy.
                    for i in 0..<k {
                        (y + (r * k + i) * k * d).update(from: xp + (win.image * n + (win.top + i) * w + win.left) * d, count: k * d)
                    }
                }
            }
        }
    }

    /// The adjoint: dx (B, tokens, D), zero where no window reads and summed where windows overlap
    /// (in window order, so the result never depends on timing).
    public static func windowsBackward(_ dy: Tensor, batch b: Int, tokens n: Int, gridWidth w: Int, size k: Int,
                                       windows: [TokenWindow]) -> Tensor {
        let d = dy.shape[2]
        precondition(dy.shape == [windows.count, k * k, d], "windowsBackward: dy \(dy.shape) for \(windows.count) windows of \(k)×\(k)")
        check(windows, batch: b, tokens: n, gridWidth: w, size: k)
        var dx = Tensor(zeros: [b, n, d])
        dy.withPointer { gp in dx.withMutablePointer { dxp in
            for (r, win) in windows.enumerated() {
                for i in 0..<k {
                    Vector.add(gp + (r * k + i) * k * d, into: dxp + (win.image * n + (win.top + i) * w + win.left) * d, k * d)
                }
            }
        } }
        return dx
    }

    private static func check(_ windows: [TokenWindow], batch b: Int, tokens n: Int, gridWidth w: Int, size k: Int) {
        precondition(w > 0 && n % w == 0 && k > 0, "token windows: \(n) tokens do not form rows of \(w)")
        let h = n / w
        for win in windows {
            precondition(win.image >= 0 && win.image < b && win.top >= 0 && win.top + k <= h && win.left >= 0 && win.left + k <= w,
                         "token window \(win) of size \(k) outside \(b) images of \(h)×\(w) patches")
        }
    }
}
