#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One labelled axis tick: `value` in data units, `position` in axis units (log10 of the value on a
/// log axis, the value itself otherwise).
struct Tick: Equatable {
    var value: Double
    var position: Double
    var label: String
}

enum Ticks {
    /// The "nice" step (1, 2 or 5 times a power of ten) that cuts `span` into about `count` parts.
    static func niceStep(span: Double, count: Int) -> Double {
        let raw = span / Double(max(1, count))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let normalized = raw / magnitude
        let factor: Double = normalized < 1.5 ? 1 : normalized < 3 ? 2 : normalized < 7 ? 5 : 10
        return factor * magnitude
    }

    /// Multiples of a 1-2-5 step inside `lo...hi`, about `count` of them, labelled with as many
    /// decimals as the step needs.
    static func linear(lo: Double, hi: Double, count: Int) -> [Tick] {
        guard lo.isFinite, hi.isFinite, hi > lo else { return [] }
        let step = niceStep(span: hi - lo, count: count)
        guard step.isFinite, step > 0 else { return [] }
        let first = (lo / step - 1e-9).rounded(.up), last = (hi / step + 1e-9).rounded(.down)
        guard first <= last, last - first < 1000 else { return [] }
        let values = stride(from: first, through: last, by: 1).map { $0 * step }
        let labels = labels(for: values, step: step)
        return zip(values, labels).map { Tick(value: $0, position: $0, label: $1) }
    }

    /// Labels for multiples of `step`: fixed-point with the step's decimals, or `2.5e6` style when
    /// the numbers would be very long.
    static func labels(for values: [Double], step: Double) -> [String] {
        let stepExponent = Int((log10(step) + 1e-9).rounded(.down))  // step is 1, 2 or 5 x 10^k
        let largest = values.map(abs).max() ?? 0
        if largest >= 1e7 || (stepExponent < -4 && largest < 1e-3) || largest > 0 && stepExponent < -6 {
            return values.map { scientific($0, significantExponent: stepExponent) }
        }
        return values.map { fixed($0, decimals: max(0, -stepExponent)) }
    }

    /// Ticks for a log10 axis spanning `lo...hi` (exponents): powers of ten when at least three fit
    /// (thinned to about `count`), else 1-2-5 multiples of powers of ten, else 1...9 multiples, else
    /// plain linear ticks. `minor` are unlabelled positions for faint grid lines (the 2...9 multiples
    /// that are not major ticks, while they are not too dense).
    static func logarithmic(lo: Double, hi: Double, count: Int) -> (major: [Tick], minor: [Double]) {
        guard lo.isFinite, hi.isFinite, hi > lo else { return ([], []) }
        let eps = 1e-9
        let firstDecade = Int((lo - eps).rounded(.up)), lastDecade = Int((hi + eps).rounded(.down))
        let plain = lo >= -4 - eps && hi < 5  // 0.0001 ... 99999 are written out, others as 1e-5
        func multiples(_ factors: [Int]) -> [Tick] {
            var ticks: [Tick] = []
            for e in (firstDecade - 1)...(lastDecade + 1) {
                for m in factors {
                    let p = Double(e) + log10(Double(m))
                    guard p >= lo - eps && p <= hi + eps else { continue }
                    let value = Double(m) * pow(10, Double(e))
                    ticks.append(Tick(value: value, position: p, label: plain ? fixed(value, decimals: max(0, -e)) : "\(m)e\(e)"))
                }
            }
            return ticks
        }
        func minor(except major: [Tick]) -> [Double] {
            guard hi - lo <= 8 else { return [] }
            return multiples(Array(1...9)).map(\.position).filter { p in !major.contains { abs($0.position - p) < eps } }
        }

        let decades = lastDecade - firstDecade + 1
        if decades >= 3 {
            var every = 1
            for candidate in [1, 2, 3, 4, 5, 10, 20, 50, 100] {
                every = candidate
                if decades / candidate <= max(2, count) { break }
            }
            let major = multiples([1]).filter { tick in
                let e = Int(tick.position.rounded())
                return (e % every + every) % every == 0
            }
            return (major, every == 1 ? minor(except: major) : [])
        }
        let oneTwoFive = multiples([1, 2, 5])
        if oneTwoFive.count >= 3 { return (oneTwoFive, minor(except: oneTwoFive)) }
        let all = multiples(Array(1...9))
        if all.count >= 3 && all.count <= 2 * max(2, count) { return (all, []) }
        if oneTwoFive.count >= 2 { return (oneTwoFive, minor(except: oneTwoFive)) }
        // Less than a factor of about 1.2 between the ends: linear ticks in data units.
        let ticks = linear(lo: pow(10, lo), hi: pow(10, hi), count: count)
            .filter { $0.value > 0 }
            .map { Tick(value: $0.value, position: log10($0.value), label: $0.label) }
        return (ticks, [])
    }

    /// `value` with exactly `decimals` digits after the point ("0.50", "-3", "1000").
    static func fixed(_ value: Double, decimals: Int) -> String {
        let d = min(max(decimals, 0), 15)
        let scaled = (abs(value) * pow(10, Double(d))).rounded()
        guard scaled.isFinite, scaled < 9e18 else { return value.description }
        let digits = String(UInt64(scaled))
        let padded = String(repeating: "0", count: max(0, d + 1 - digits.count)) + digits
        let integerPart = padded.dropLast(d)
        let fraction = padded.suffix(d)
        let negative = value < 0 && scaled != 0
        return (negative ? "-" : "") + integerPart + (d > 0 ? "." + fraction : "")
    }

    /// `value` as mantissa "e" exponent, with the mantissa showing digits down to 10^significantExponent
    /// ("2.5e6", "1e-5", "0").
    static func scientific(_ value: Double, significantExponent: Int) -> String {
        guard value != 0, value.isFinite else { return value == 0 ? "0" : value.description }
        var exponent = Int(log10(abs(value)).rounded(.down))
        var decimals = min(6, max(0, exponent - significantExponent))
        var mantissa = value / pow(10, Double(exponent))
        if abs((mantissa * pow(10, Double(decimals))).rounded()) >= 10 * pow(10, Double(decimals)) {
            exponent += 1
            decimals = min(6, max(0, exponent - significantExponent))
            mantissa = value / pow(10, Double(exponent))
        }
        return fixed(mantissa, decimals: decimals) + "e\(exponent)"
    }
}
