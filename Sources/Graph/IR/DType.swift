/// Element types a tensor can hold; the names are the ones the text IR prints.
public enum DType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case f32, f16, bf16, f64, i8, u8, i32, i64, bool

    public var description: String { rawValue }

    /// Size of one element in bytes.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64: return true
        default: return false
        }
    }

    public var isInteger: Bool {
        switch self {
        case .i8, .u8, .i32, .i64: return true
        default: return false
        }
    }

    /// The `TensorProto.DataType` number ONNX uses for this type.
    public var onnxCode: Int32 {
        switch self {
        case .f32: return 1
        case .u8: return 2
        case .i8: return 3
        case .i32: return 6
        case .i64: return 7
        case .bool: return 9
        case .f16: return 10
        case .f64: return 11
        case .bf16: return 16
        }
    }

    /// The Kiln type for an ONNX `TensorProto.DataType` number, or nil when Kiln has none.
    public init?(onnxCode: Int32) {
        guard let t = DType.allCases.first(where: { $0.onnxCode == onnxCode }) else { return nil }
        self = t
    }

    /// ONNX's name for a `TensorProto.DataType` number, for error messages.
    public static func onnxName(_ code: Int32) -> String {
        let names: [Int32: String] = [
            0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32",
            7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32",
            13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ",
            19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
        ]
        return names[code] ?? "type \(code)"
    }
}
