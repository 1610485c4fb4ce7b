import Objectives

/// "Did you mean …?" for a path no route matches (a 404): the route nearest to it by spelling, with
/// its methods. A pattern's `{parameter}` segments take the path's own text before the comparison, so
/// `/v1/model/tiny/load` finds `/v1/models/{id}/load` one edit away.
public enum RouteAdvice {
    /// The advice for `path` among `routes` (method, pattern), or nil when no route is within three edits.
    public static func forPath(_ path: String, among routes: [(method: String, pattern: String)]) -> String? {
        var patterns: [String] = []
        for route in routes where !patterns.contains(route.pattern) { patterns.append(route.pattern) }
        let filled = patterns.map { filledIn($0, from: path) }
        guard let nearest = NameSuggestion.closest(to: path, among: filled, maximumEdits: 3),
              let pattern = filled.firstIndex(of: nearest).map({ patterns[$0] }) else { return nil }
        let methods = routes.filter { $0.pattern == pattern }.map(\.method)
        return "Did you mean \(methods.joined(separator: " or ")) \(pattern)?"
    }

    /// `pattern` with each `{parameter}` segment replaced by the path's segment at that place (when both
    /// have as many segments; otherwise the pattern as it is).
    static func filledIn(_ pattern: String, from path: String) -> String {
        let want = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let have = path.split(separator: "/", omittingEmptySubsequences: false)
        guard want.count == have.count else { return pattern }
        return zip(want, have).map { $0.hasPrefix("{") && $0.hasSuffix("}") ? String($1) : String($0) }.joined(separator: "/")
    }
}
