import COnnxProto
import Foundation
import Graph


/// Swift strings from protobuf-c's nullable C strings.
@inline(__always)
func str(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }


extension TensorData {
    /// Converts a TensorProto, reading external data relative to `baseDirectory`.
    ///
    /// External data must stay inside `baseDirectory`: absolute paths, `..` and symlinks that
    /// lead out are refused.
    static func fromProto(_ t: UnsafePointer<Onnx__TensorProto>, baseDirectory: URL?, what: String) throws(GraphError) -> TensorData {
        func fail(_ m: String) -> GraphError { .graph(message: "\(what): \(m)", location: nil) }
        let p = t.pointee
        let code = p.has_data_type != 0 ? p.data_type : 0
        guard let dtype = DType(onnxCode: code) else {
            throw fail("element type \(DType.onnxName(code)) is not supported by Kiln")
        }
        guard p.n_dims <= ONNXLimits.maxRank else { throw fail("rank \(p.n_dims) is too large") }
        let dims = (0..<p.n_dims).map { Int(p.dims[$0]) }
        guard let count = checkedCount(dims), count <= ONNXLimits.maxTensorBytes / dtype.byteSize else {
            throw fail("dimensions \(dims) are negative or too large")
        }
        let bytes = count * dtype.byteSize

        if p.has_data_location != 0 && p.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            var fields: [String: String] = [:]
            for i in 0..<p.n_external_data { fields[str(p.external_data[i]!.pointee.key)] = str(p.external_data[i]!.pointee.value) }
            let data = try readExternal(fields, base: baseDirectory, bytes: bytes, fail: fail)
            return TensorData(dtype: dtype, shape: dims, bytes: data)
        }
        if p.has_raw_data != 0 {
            guard p.raw_data.len == bytes else { throw fail("raw_data holds \(p.raw_data.len) bytes, \(dims) of \(dtype) needs \(bytes)") }
            let raw = bytes == 0 ? [] : Array(UnsafeBufferPointer(start: p.raw_data.data, count: bytes))
            return TensorData(dtype: dtype, shape: dims, bytes: raw)
        }
        func need(_ n: Int, _ field: String) throws(GraphError) {
            guard n == count else { throw fail("\(field) holds \(n) values, \(dims) needs \(count)") }
        }
        switch dtype {
        case .f32:
            try need(p.n_float_data, "float_data")
            return TensorData(floats: count == 0 ? [] : Array(UnsafeBufferPointer(start: p.float_data, count: count)), shape: dims)
        case .f64:
            try need(p.n_double_data, "double_data")
            return TensorData(doubles: count == 0 ? [] : Array(UnsafeBufferPointer(start: p.double_data, count: count)), shape: dims)
        case .i64:
            try need(p.n_int64_data, "int64_data")
            return TensorData(int64s: count == 0 ? [] : Array(UnsafeBufferPointer(start: p.int64_data, count: count)), shape: dims)
        case .i32, .i8, .u8, .bool:
            try need(p.n_int32_data, "int32_data")
            return TensorData(dtype: dtype, shape: dims, integers: (0..<count).map { Int64(p.int32_data[$0]) })
        case .f16, .bf16:
            // The 16-bit patterns, one per int32.
            try need(p.n_int32_data, "int32_data")
            var out = [UInt8]()
            out.reserveCapacity(bytes)
            for i in 0..<count {
                let b = UInt16(truncatingIfNeeded: p.int32_data[i])
                out.append(UInt8(b & 0xFF))
                out.append(UInt8(b >> 8))
            }
            return TensorData(dtype: dtype, shape: dims, bytes: out)
        }
    }

    private static func readExternal(_ fields: [String: String], base: URL?, bytes: Int, fail: (String) -> GraphError) throws(GraphError) -> [UInt8] {
        guard let location = fields["location"], !location.isEmpty else { throw fail("external data has no location") }
        guard let base else { throw fail("external data '\(location)' needs the model's folder") }
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw fail("external data path '\(location)' leaves the model's folder")
        }
        let root = base.standardizedFileURL.resolvingSymlinksInPath()
        let file = root.appendingPathComponent(location).standardizedFileURL.resolvingSymlinksInPath()
        guard file.path.hasPrefix(root.path + "/") else { throw fail("external data path '\(location)' leaves the model's folder") }
        let offset = Int(fields["offset"] ?? "0") ?? -1
        guard offset >= 0 else { throw fail("external data offset '\(fields["offset"] ?? "")' is not a non-negative integer") }
        if let l = fields["length"] {
            guard let length = Int(l), length == bytes else { throw fail("external data length \(l) does not match the \(bytes) bytes the tensor needs") }
        }
        guard let handle = FileHandle(forReadingAtPath: file.path) else { throw fail("cannot open external data file '\(location)'") }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map(Int.init) ?? 0
        guard offset <= size, bytes <= size - offset else {
            throw fail("external data '\(location)' holds \(size) bytes, the tensor needs \(bytes) from offset \(offset)")
        }
        do {
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: bytes) ?? Data()
            guard data.count == bytes else { throw fail("short read of external data '\(location)'") }
            return [UInt8](data)
        } catch let e as GraphError {
            throw e
        } catch {
            throw fail("cannot read external data '\(location)': \(error.localizedDescription)")
        }
    }

    /// Reads a serialized TensorProto (`.pb`, as ONNX's test data stores inputs and outputs).
    public static func readProtobuf(_ data: [UInt8], path: String) throws(GraphError) -> (name: String, tensor: TensorData) {
        guard let t = data.withUnsafeBufferPointer({ onnx__tensor_proto__unpack(nil, $0.count, $0.baseAddress) }) else {
            throw GraphError.file(path: path, message: "not a valid TensorProto (protobuf parse failed)")
        }
        defer { onnx__tensor_proto__free_unpacked(t, nil) }
        do {
            let tensor = try fromProto(t, baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent(), what: "tensor")
            return (str(t.pointee.name), tensor)
        } catch {
            if case .graph(let m, _) = error { throw GraphError.file(path: path, message: m) }
            throw error
        }
    }

    /// Serializes as a TensorProto with `raw_data`.
    public func protobufBytes(name: String) -> [UInt8] {
        CArena.with { arena in
            let t = arena.tensorProto(self, name: name)
            let size = onnx__tensor_proto__get_packed_size(t)
            var out = [UInt8](repeating: 0, count: size)
            _ = out.withUnsafeMutableBufferPointer { onnx__tensor_proto__pack(t, $0.baseAddress) }
            return out
        }
    }
}

/// Owns the C memory of protobuf-c messages Kiln builds for writing, freed all at once.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    static func with<T>(_ body: (CArena) throws -> T) rethrows -> T {
        let a = CArena()
        defer { a.blocks.forEach { free($0) } }
        return try body(a)
    }

    func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(s.utf8CString)
        let p = allocate(CChar.self, count: utf8.count)
        utf8.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: utf8.count) }
        return p
    }

    func bytes(_ b: [UInt8]) -> ProtobufCBinaryData {
        let p = allocate(UInt8.self, count: b.count)
        if !b.isEmpty { b.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: b.count) } }
        return ProtobufCBinaryData(len: b.count, data: p)
    }

    func array<T>(_ items: [T]) -> UnsafeMutablePointer<T> {
        let p = allocate(T.self, count: items.count)
        for (i, v) in items.enumerated() { (p + i).initialize(to: v) }
        return p
    }

    func tensorProto(_ t: TensorData, name: String) -> UnsafeMutablePointer<Onnx__TensorProto> {
        let p = allocate(Onnx__TensorProto.self)
        onnx__tensor_proto__init(p)
        p.pointee.n_dims = t.shape.count
        p.pointee.dims = array(t.shape.map(Int64.init))
        p.pointee.has_data_type = 1
        p.pointee.data_type = t.dtype.onnxCode
        p.pointee.name = string(name)
        p.pointee.has_raw_data = 1
        p.pointee.raw_data = bytes(t.bytes)
        return p
    }
}
