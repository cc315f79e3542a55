/// A node attribute, with ONNX's attribute kinds (graphs and sparse tensors excepted).
public enum Attribute: Sendable, Equatable {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensor(TensorData)

    public var kind: AttributeKind {
        switch self {
        case .int: return .int
        case .float: return .float
        case .string: return .string
        case .ints: return .ints
        case .floats: return .floats
        case .strings: return .strings
        case .tensor: return .tensor
        }
    }
}

public enum AttributeKind: String, Sendable, Equatable {
    case int, float, string, ints, floats, strings, tensor
}
