import Foundation
import Graph

/// Reads a tensor file by extension: `.npy` or `.pb` (TensorProto).
public func readTensorFile(_ path: String) throws(GraphError) -> TensorData {
    if path.lowercased().hasSuffix(".npy") { return try NPY.read(path: path) }
    if path.lowercased().hasSuffix(".pb") {
        guard let data = FileManager.default.contents(atPath: path) else { throw GraphError.file(path: path, message: "cannot read") }
        return try TensorData.readProtobuf([UInt8](data), path: path).tensor
    }
    throw GraphError.file(path: path, message: "unknown tensor file type (Kiln reads .npy and .pb)")
}
