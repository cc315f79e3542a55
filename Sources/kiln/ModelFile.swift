import Foundation
import Graph
import ONNX

/// Loads a network from a file, choosing the reader by extension.
func loadGraph(_ path: String, constants: [String: TensorData] = [:]) throws -> Graph {
    if path == "-" {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        guard let text = String(data: data, encoding: .utf8) else { throw CLIError("<stdin>: not UTF-8 text") }
        return try TextFormat.parse(text, file: "<stdin>")
    }
    let url = URL(fileURLWithPath: path)
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CLIError("\(path): no such file")
    }
    guard !isDirectory.boolValue else { throw CLIError("\(path): is a directory, expected a model file") }
    switch url.pathExtension.lowercased() {
    case "kiln":
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw CLIError("\(path): cannot read: \(error.localizedDescription)") }
        guard let text = String(data: data, encoding: .utf8) else { throw CLIError("\(path): not UTF-8 text") }
        return try TextFormat.parse(text, file: path)
    case "onnx":
        return try ONNXImport.load(path: path, constants: constants)
    default:
        throw CLIError("\(path): unknown model file type '.\(url.pathExtension)' (Kiln reads .kiln text IR and .onnx)")
    }
}
