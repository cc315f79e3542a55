import Foundation

/// NumPy `.npy` files, versions 1 and 2, C order, little-endian (f32, f64, f16, i64, i32, u8, i8, bool).
///
/// References: the NumPy format specification, `numpy.lib.format` (NEP 1).
public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    static let descriptors: [(String, DType)] = [
        ("<f4", .f32), ("<f8", .f64), ("<f2", .f16), ("<i8", .i64), ("<i4", .i32), ("|u1", .u8), ("|i1", .i8), ("|b1", .bool),
        ("u1", .u8), ("i1", .i8), ("b1", .bool),
    ]

    public static func read(path: String) throws(GraphError) -> TensorData {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GraphError.file(path: path, message: "cannot read")
        }
        return try decode([UInt8](data), path: path)
    }

    public static func decode(_ b: [UInt8], path: String) throws(GraphError) -> TensorData {
        func fail(_ m: String) -> GraphError { .file(path: path, message: m) }
        guard b.count >= 10, Array(b[0..<6]) == magic else { throw fail("not a .npy file (bad magic)") }
        let major = b[6]
        let headerLength: Int, start: Int
        switch major {
        case 1:
            headerLength = Int(b[8]) | Int(b[9]) << 8
            start = 10
        case 2, 3:
            guard b.count >= 12 else { throw fail("truncated .npy header") }
            headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
            start = 12
        default:
            throw fail(".npy version \(major) is not supported (1 and 2 are)")
        }
        guard headerLength <= 1 << 20, start + headerLength <= b.count else { throw fail("truncated .npy header") }
        let header = String(decoding: b[start..<(start + headerLength)], as: UTF8.self)
        guard let descr = field(header, "descr").flatMap(unquote) else { throw fail("header has no 'descr'") }
        guard let dtype = descriptors.first(where: { $0.0 == descr })?.1 else {
            throw fail("element type '\(descr)' is not supported (little-endian f4, f8, f2, i8, i4, u1, i1, b1 are)")
        }
        guard let fortran = field(header, "fortran_order") else { throw fail("header has no 'fortran_order'") }
        guard fortran == "False" else { throw fail("Fortran-order arrays are not supported; save with C order") }
        guard let shapeText = field(header, "shape") else { throw fail("header has no 'shape'") }
        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let d = Int(t), d >= 0 else { throw fail("bad dimension '\(t)' in shape \(shapeText)") }
            shape.append(d)
        }
        guard let count = checkedCount(shape), count <= ONNXLimits.maxTensorBytes / dtype.byteSize else {
            throw fail("shape \(shape) is too large")
        }
        let offset = start + headerLength
        let bytes = count * dtype.byteSize
        guard b.count - offset == bytes else {
            throw fail("holds \(b.count - offset) data bytes, shape \(shape) of \(dtype) needs \(bytes)")
        }
        return TensorData(dtype: dtype, shape: shape, bytes: Array(b[offset...]))
    }

    /// The value text of `key` in a Python dict literal (shape tuples included).
    static func field(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
        var rest = header[r.upperBound...].drop { $0 == " " }
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst().drop { $0 == " " }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        let end = rest.firstIndex { $0 == "," || $0 == "}" } ?? rest.endIndex
        return rest[..<end].trimmingCharacters(in: .whitespaces)
    }

    static func unquote(_ s: String) -> String? {
        guard s.count >= 2, let f = s.first, f == "'" || f == "\"", s.last == f else { return nil }
        return String(s.dropFirst().dropLast())
    }

    /// A version 1 `.npy` file holding `t`.
    public static func encode(_ t: TensorData) -> [UInt8] {
        let descr: String
        switch t.dtype {
        case .f32: descr = "<f4"
        case .f64: descr = "<f8"
        case .f16: descr = "<f2"
        case .i64: descr = "<i8"
        case .i32: descr = "<i4"
        case .u8: descr = "|u1"
        case .i8: descr = "|i1"
        case .bool: descr = "|b1"
        case .bf16: return encode(TensorData(dtype: .f32, shape: t.shape, values: t.doubles))  // numpy has no bfloat16
        }
        let shape = t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        let n = header.utf8.count
        return magic + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + t.bytes
    }

    /// Writes atomically (temporary file, then rename).
    public static func write(_ t: TensorData, path: String) throws {
        try Data(encode(t)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
