import XCTest
import Foundation

/// Every directory in `models/` is a complete export, made on a training machine but free of its
/// paths, and the folder stays within the size the repository allows. Enumerated, so each new export
/// is covered without a new test.
final class ShippedModelsFolderTests: XCTestCase {
    /// The issues' limit for models/ in total: 30 MB, read as decimal megabytes (stricter than 30 MiB).
    static let sizeLimit = 30_000_000

    static var modelNames: [String] {
        get throws {
            let dir = ShippedServer.modelsDirectory
            return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { name in
                var isDirectory: ObjCBool = false
                return !name.hasPrefix(".")
                    && FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path, isDirectory: &isDirectory)
                    && isDirectory.boolValue
            }.sorted()
        }
    }

    func testEveryModelDirectoryIsACompleteExport() throws {
        let names = try Self.modelNames
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let dir = ShippedServer.modelsDirectory.appendingPathComponent(name)
            for file in ["config.json", "model.safetensors", "MODEL_CARD.md"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(file).path), "\(name) has no \(file)")
            }
            let card = (try? String(contentsOf: dir.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)) ?? ""
            XCTAssertEqual(card.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init), "# \(name)",
                           "\(name)/MODEL_CARD.md: the title line names the directory the model is served as")
            guard let data = try? Data(contentsOf: dir.appendingPathComponent("config.json")) else { continue }
            let config = try XCTUnwrap(try? JSONSerialization.jsonObject(with: data), "\(name)/config.json is not JSON")
            // training_data may name a Debian package's data (/usr/share/...), as the recipe below may.
            let absolute = Self.strings(in: config).filter { $0.value.hasPrefix("/") && !($0.key == "training_data" && $0.value.hasPrefix("/usr/share/")) }
            XCTAssertEqual(absolute.map(\.key), [], "\(name)/config.json holds a training machine's path: \(absolute)")

            // The card shows the config.json it ships beside (but intended_input and training_data,
            // which have sections of their own), and its recipe names no folder of the training
            // machine (an absolute path there is a Debian package's data, /usr/share/...).
            let shown = try XCTUnwrap(Self.fencedJSON(in: card, under: "## Architecture"), "\(name): no Architecture block")
            var architecture = try XCTUnwrap(config as? [String: Any])
            architecture["intended_input"] = nil
            architecture["training_data"] = nil
            architecture["test_share"] = nil
            XCTAssertEqual(shown as? NSDictionary, architecture as NSDictionary, "\(name)/MODEL_CARD.md: Architecture is not its config.json")
            let recipe = try XCTUnwrap(Self.fencedJSON(in: card, under: "## Data and recipe"), "\(name): no recipe block")
            // Measurements of the model without --data read training_data: the data its recipe trained on.
            XCTAssertEqual((config as? [String: Any])?["training_data"] as? String, (recipe as? [String: Any])?["data"] as? String,
                           "\(name)/config.json training_data is not the data of the card's recipe")
            let machine = Self.strings(in: recipe).filter { $0.value.hasPrefix("/") && !$0.value.hasPrefix("/usr/share/") }
            XCTAssertEqual(machine.map(\.key), [], "\(name)/MODEL_CARD.md's recipe holds a training machine's path: \(machine)")
            // Nor do the commands that trained it (words after a space, `=` or a quote).
            let commands = Self.fenced(in: card, under: "## Commands", language: "") ?? ""
            let words = commands.split(whereSeparator: { " \n=\"'".contains($0) }).map(String.init)
            let machineWords = words.filter { $0.hasPrefix("/") && !$0.hasPrefix("/usr/share/") }
            XCTAssertEqual(machineWords, [], "\(name)/MODEL_CARD.md's commands hold a training machine's path")
            // Nor does the weights file's metadata (the run it came from is named by its folder).
            let metadata = try XCTUnwrap(Self.safetensorsMetadata(dir.appendingPathComponent("model.safetensors")), "\(name)/model.safetensors")
            let inWeights = metadata.filter { $0.value.hasPrefix("/") }
            XCTAssertEqual(inWeights.keys.sorted(), [], "\(name)/model.safetensors metadata holds a training machine's path: \(inWeights)")
        }
    }

    /// The `__metadata__` of a safetensors file: its header is an 8-byte little-endian length, then JSON.
    static func safetensorsMetadata(_ url: URL) throws -> [String: String]? {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        guard let size = try handle.read(upToCount: 8), size.count == 8 else { return nil }
        let length = size.reversed().reduce(0) { $0 << 8 | Int($1) }
        guard let header = try handle.read(upToCount: length),
              let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else { return nil }
        return object["__metadata__"] as? [String: String] ?? [:]
    }

    /// The JSON of the first fenced ```json block after the heading line `heading`.
    static func fencedJSON(in markdown: String, under heading: String) -> Any? {
        fenced(in: markdown, under: heading, language: "json").flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }
    }

    /// The text of the first fenced block (```language) after the heading line `heading`.
    static func fenced(in markdown: String, under heading: String, language: String) -> String? {
        guard let start = markdown.range(of: "\n" + heading + "\n"),
              let open = markdown.range(of: "```" + language + "\n", range: start.upperBound..<markdown.endIndex),
              let close = markdown.range(of: "\n```", range: open.upperBound..<markdown.endIndex) else { return nil }
        return String(markdown[open.upperBound..<close.lowerBound])
    }

    func testTheFolderStaysUnderTheSizeLimit() throws {
        let dir = ShippedServer.modelsDirectory
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]))
        var total = 0
        var sizes: [String: Int] = [:]
        for case let url as URL in enumerator {
            let values = try url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
            guard values.isRegularFile == true, let size = values.fileSize else { continue }
            total += size
            let top = url.path.dropFirst(dir.path.count + 1).split(separator: "/").first.map(String.init) ?? url.lastPathComponent
            sizes[top, default: 0] += size
        }
        XCTAssertGreaterThan(total, 0)
        XCTAssertLessThan(total, Self.sizeLimit, "models/ holds \(total) bytes: \(sizes.sorted { $0.value > $1.value })")
    }

    /// Every string value of a JSON document, with its key path (`a.b[2]`).
    static func strings(in value: Any, at path: String = "") -> [(key: String, value: String)] {
        switch value {
        case let string as String: return [(path, string)]
        case let object as [String: Any]:
            return object.keys.sorted().flatMap { strings(in: object[$0]!, at: path.isEmpty ? $0 : "\(path).\($0)") }
        case let array as [Any]:
            return array.enumerated().flatMap { strings(in: $1, at: "\(path)[\($0)]") }
        default: return []
        }
    }
}
