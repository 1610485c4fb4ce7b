import Foundation

/// Every objective the trainer and the service know, by name. The built-in ones are listed here,
/// one line each; a program (or a test) adds its own with `register`.
public enum ObjectiveRegistry {
    private static let builtIn: [any PretrainingObjective.Type] = [
        BootMAE.self,
        MAE.self,
        IBOT.self,
        LoMaR.self,
        PeCoTokenizer.self,
        PeCo.self,
    ]

    private static let lock = NSLock()
    nonisolated(unsafe) private static var added: [any PretrainingObjective.Type] = []

    /// Makes `objective` known by its name (replacing an earlier registration of that name).
    public static func register(_ objective: any PretrainingObjective.Type) {
        lock.withLock {
            added.removeAll { $0.name == objective.name }
            added.append(objective)
        }
    }

    /// Every known objective, built-in ones first.
    public static var all: [any PretrainingObjective.Type] {
        let extra = lock.withLock { added }
        return builtIn.filter { b in !extra.contains { $0.name == b.name } } + extra
    }

    public static var names: [String] { all.map { $0.name } }

    public static func objective(named name: String) -> (any PretrainingObjective.Type)? {
        all.first { $0.name == name }
    }

    /// The objective named `name`, or an error that lists the known ones.
    public static func require(_ name: String) throws -> any PretrainingObjective.Type {
        guard let o = objective(named: name) else {
            throw UnknownObjective(name: name)
        }
        return o
    }

    public struct UnknownObjective: Error, CustomStringConvertible {
        public let name: String
        public var description: String {
            "unknown objective '\(name)'; known objectives: \(ObjectiveRegistry.names.joined(separator: ", "))"
        }
    }
}
