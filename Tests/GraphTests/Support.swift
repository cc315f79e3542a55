import Foundation
import Graph
import Testing

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func modelFiles() -> [URL] {
    let dir = repositoryRoot.appendingPathComponent("models")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { $0.hasSuffix(".kiln") }.sorted().map { dir.appendingPathComponent($0) }
}

/// Parses `text` and returns the error's description, or nil when it parsed.
func parseError(_ text: String, file: String = "t.kiln") -> String? {
    do {
        _ = try TextFormat.parse(text, file: file)
        return nil
    } catch {
        return error.description
    }
}

/// Output types of a one-node graph built from `body` (text IR node lines after the inputs).
func inferredTypes(_ text: String) throws -> [String: TensorType] {
    try TextFormat.parse(text).valueTypes
}

let N = Dim(symbol: "N")
