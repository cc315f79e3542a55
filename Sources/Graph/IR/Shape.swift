/// One dimension of a shape: a fixed size, a symbol (the batch `N`), or a product of both
/// (`64*N`, as Flatten or Reshape produce from a symbolic batch).
///
/// A dimension is `coefficient × Π symbols`; a fixed size has no symbols.
public struct Dim: Sendable, Hashable, CustomStringConvertible {
    public var coefficient: Int
    /// Symbol names, sorted, with repetition (`N*N` is `["N", "N"]`).
    public var symbols: [String]

    public init(_ value: Int) {
        coefficient = value
        symbols = []
    }

    public init(symbol: String) {
        coefficient = 1
        symbols = [symbol]
    }

    public init(coefficient: Int, symbols: [String]) {
        self.coefficient = coefficient
        self.symbols = coefficient == 0 ? [] : symbols.sorted()
    }

    /// The fixed size, or nil when the dimension depends on a symbol.
    public var value: Int? { symbols.isEmpty ? coefficient : nil }
    public var isSymbolic: Bool { !symbols.isEmpty }

    /// The product; a coefficient past Int's range saturates (verification then refuses it).
    public static func * (a: Dim, b: Dim) -> Dim {
        let (c, overflow) = a.coefficient.multipliedReportingOverflow(by: b.coefficient)
        return Dim(coefficient: overflow ? Int.max : c, symbols: a.symbols + b.symbols)
    }

    /// `a / b` when it divides exactly (symbols cancel, coefficients divide), otherwise nil.
    public static func divide(_ a: Dim, by b: Dim) -> Dim? {
        guard b.coefficient != 0, a.coefficient % b.coefficient == 0 else { return nil }
        var rest = a.symbols
        for s in b.symbols {
            guard let i = rest.firstIndex(of: s) else { return nil }
            rest.remove(at: i)
        }
        return Dim(coefficient: a.coefficient / b.coefficient, symbols: rest)
    }

    /// Replaces symbols by sizes where `bindings` has them.
    public func bound(_ bindings: [String: Int]) -> Dim {
        var c = coefficient
        var rest: [String] = []
        for s in symbols {
            if let v = bindings[s] { c &*= v } else { rest.append(s) }
        }
        return Dim(coefficient: c, symbols: rest)
    }

    public var description: String {
        if symbols.isEmpty { return String(coefficient) }
        let product = symbols.joined(separator: "*")
        return coefficient == 1 ? product : "\(coefficient)*\(product)"
    }
}

extension Dim: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self.init(value) }
}

/// A tensor shape: a list of dimensions. Rank 0 is a scalar.
public typealias Shape = [Dim]

extension Array where Element == Dim {
    /// Number of elements, a `Dim` since the batch may be symbolic.
    public var elementCount: Dim { reduce(Dim(1), *) }

    /// All sizes when none is symbolic.
    public var staticSizes: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(count)
        for d in self {
            guard let v = d.value else { return nil }
            out.append(v)
        }
        return out
    }

    public func bound(_ bindings: [String: Int]) -> Shape { map { $0.bound(bindings) } }

    /// The shape as the text IR prints it: `[N, 16, 32, 32]`.
    public var text: String { "[" + map(\.description).joined(separator: ", ") + "]" }
}

/// The static type of a value: element type and shape.
public struct TensorType: Sendable, Hashable, CustomStringConvertible {
    public var dtype: DType
    public var shape: Shape

    public init(_ dtype: DType, _ shape: Shape) {
        self.dtype = dtype
        self.shape = shape
    }

    public var rank: Int { shape.count }
    public var description: String { "\(dtype)\(shape.text)" }
}
