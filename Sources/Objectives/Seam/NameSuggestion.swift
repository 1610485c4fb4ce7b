/// "Did you mean …?" for a misspelt name (a command-line flag, a request option): the known name
/// nearest by edit distance, if it is near enough to be the likely intent.
public enum NameSuggestion {
    /// The name of `known` nearest to `name`, within `maximumEdits` (ties: the first in `known`).
    public static func closest(to name: String, among known: [String], maximumEdits: Int = 2) -> String? {
        known.map { ($0, editDistance($0, name)) }.filter { $0.1 <= maximumEdits }.min { $0.1 < $1.1 }?.0
    }

    /// Levenshtein distance (insertions, deletions, substitutions).
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
