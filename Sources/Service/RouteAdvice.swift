import Objectives

/// "Did you mean …?" for a path no route matches (a 404): the route nearest to it by spelling, with
/// its methods. A pattern's `{parameter}` segments take the path's own text before the comparison, so
/// `/v1/model/tiny/load` finds `/v1/models/{id}/load` one edit away.
public enum RouteAdvice {
    /// Paths longer than this get no advice: the edit distance costs length², and a 404 is answered on
    /// an I/O queue (the target may be 8 KiB long).
    static let longestAdvisedPath = 256

    /// The advice for `path` among `routes` (method, pattern), or nil when no route is near: within a
    /// third of the pattern's length in edits, at most three (so `/` is never offered for a short path).
    public static func forPath(_ path: String, among routes: [(method: String, pattern: String)]) -> String? {
        guard path.utf8.count <= longestAdvisedPath else { return nil }
        var patterns: [String] = []
        for route in routes where !patterns.contains(route.pattern) { patterns.append(route.pattern) }
        let near = patterns.compactMap { pattern -> (pattern: String, edits: Int)? in
            let filled = filledIn(pattern, from: path)
            let allowed = min(3, pattern.count / 3)
            guard abs(filled.count - path.count) <= allowed else { return nil }
            let edits = NameSuggestion.editDistance(filled, path)
            return edits <= allowed ? (pattern, edits) : nil
        }
        guard let nearest = near.min(by: { $0.edits < $1.edits })?.pattern else { return nil }
        let methods = routes.filter { $0.pattern == nearest }.map(\.method)
        return "Did you mean \(methods.joined(separator: " or ")) \(nearest)?"
    }

    /// `pattern` with each `{parameter}` segment replaced by the path's segment at that place, when both
    /// have as many segments and that segment is not empty (the router never matches an empty parameter);
    /// otherwise the pattern as it is.
    static func filledIn(_ pattern: String, from path: String) -> String {
        let want = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let have = path.split(separator: "/", omittingEmptySubsequences: false)
        guard want.count == have.count else { return pattern }
        return zip(want, have).map { $0.hasPrefix("{") && $0.hasSuffix("}") && !$1.isEmpty ? String($1) : String($0) }
            .joined(separator: "/")
    }
}
