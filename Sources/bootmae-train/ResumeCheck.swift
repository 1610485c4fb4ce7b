import ArgumentParser
import Foundation

// `--resume` with flags: the command line is turned into the recipe (and model) it would start, the
// flags it does not give taking the recorded values, and compared field by field with what the run
// folder recorded. Equal values are accepted (the identical command line plus --resume continues the
// run); a flag that says something else is refused, naming the recorded and the given value.

/// One field where the command line and the recorded run disagree.
struct ResumeDifference: Equatable {
    /// The flag (or, for a field no single flag names, the recorded field) that differs.
    let name: String
    let recorded: String
    let given: String

    var sentence: String { "\(name): recorded \(recorded), given \(given)" }
}

/// A JSON-encodable value as a flat map from dotted key paths ("ema.start") to its leaves.
func flattenedJSON<T: Encodable>(_ value: T) -> [String: NSObject] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    guard let data = try? encoder.encode(value), let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
        return [:]
    }
    var flat: [String: NSObject] = [:]
    func walk(_ node: Any, _ path: String) {
        if let dictionary = node as? [String: Any] {
            for (key, child) in dictionary { walk(child, path.isEmpty ? key : path + "." + key) }
        } else if let object = node as? NSObject {
            flat[path] = object
        }
    }
    walk(object, "")
    return flat
}

/// A leaf as the user would write it (arrays as "[0.25, 1]", numbers in their shortest form).
func leafText(_ value: NSObject?) -> String {
    guard let value else { return "(none)" }
    if value is NSNull { return "none" }
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
        return String(decoding: data, as: UTF8.self)
    }
    return "\(value)"
}

/// The fields of `given` that differ from `recorded` because of a flag on the command line.
///
/// A field counts when the given flags moved it away from what the defaults make (`defaults`: the
/// same derivation without those flags), or when a given flag is named after it (`flagOf`), which
/// also catches a flag given at its default value while the run recorded another. A field the given
/// flags leave alone keeps its recorded value (its flag was given when the run started, not now).
func differingFields(recorded: [String: NSObject], given: [String: NSObject], defaults: [String: NSObject],
                       givenFlags: Set<String>, flagOf: (String) -> String?) -> [ResumeDifference] {
    var found: [ResumeDifference] = []
    for key in recorded.keys.sorted() {
        guard let old = recorded[key], let new = given[key], !old.isEqual(new) else { continue }
        let flag = flagOf(key)
        let named = flag.map { givenFlags.contains($0) } ?? false
        let moved = !(defaults[key].map { $0.isEqual(new) } ?? false)
        guard named || moved else { continue }
        found.append(ResumeDifference(name: named ? flag! : key, recorded: leafText(old), given: leafText(new)))
    }
    return found
}

/// The flag an objective's option or setting is most likely set by: its key path with "_" and "."
/// as "-" ("ema.start" → "--ema-start", "feature_weight" → "--feature-weight").
func conventionalFlag(_ key: String) -> String {
    "--" + key.split(separator: ".").joined(separator: "-").replacingOccurrences(of: "_", with: "-")
}

/// Throws the usage error of a --resume whose flags contradict the recorded run; nothing when they agree.
func ensureAgrees(_ differences: [ResumeDifference], run out: String) throws {
    guard !differences.isEmpty else { return }
    var seen = Set<String>()
    let unique = differences.filter { seen.insert($0.sentence).inserted }
    throw ValidationError("--resume continues the run recorded in \(out) (recipe.json, config.json), and this command line "
                          + "differs from it: " + unique.map(\.sentence).joined(separator: "; ")
                          + ". Give the recorded values (or drop those flags), or start a new run (another --out, or --overwrite)")
}

/// A dataset path as recorded (absolute, symlinks resolved), for comparing two spellings of one folder.
func canonicalPath(_ path: String) -> String {
    URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
}
