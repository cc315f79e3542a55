import Graph

public enum InitError: Error, Sendable, Equatable, CustomStringConvertible {
    case noValues(parameter: String)
    case badRule(parameter: String, reason: String)

    public var description: String {
        switch self {
        case let .noValues(p):
            return "parameter '\(p)' has no values: its file printed a summary instead (dump with --weights full to keep them)"
        case let .badRule(p, reason):
            return "parameter '\(p)': \(reason)"
        }
    }
}

/// Fan-in and fan-out of a weight as PyTorch computes them: dimension 1 (input channels) and
/// 0 (output channels), times the receptive field (the product of dimensions 2…).
public func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
    guard shape.count >= 2 else { return (shape.first ?? 1, shape.first ?? 1) }
    let field = shape.dropFirst(2).reduce(1, *)
    return (shape[1] * field, shape[0] * field)
}

extension Graph {
    /// The graph with every rule-initialised parameter replaced by values drawn from `seed`.
    ///
    /// Each parameter has its own stream (seeded from `seed` and the parameter's name), so a
    /// parameter's values do not depend on which other parameters the graph has.
    public func materialized(seed: UInt64) throws -> Graph {
        var g = self
        for (i, p) in parameters.enumerated() {
            var rng = KilnRandom(seed: seed ^ stableHash(p.name))
            let n = p.count
            var values = [Double](repeating: 0, count: n)
            let (fanIn, fanOut) = fans(p.shape)
            switch p.initializer {
            case .data: continue
            case .summary: throw InitError.noValues(parameter: p.name)
            case .zeros: break
            case .ones: values = [Double](repeating: 1, count: n)
            case .constant(let v): values = [Double](repeating: v, count: n)
            case .uniform(let lo, let hi):
                guard lo <= hi else { throw InitError.badRule(parameter: p.name, reason: "uniform(\(lo), \(hi)) has low > high") }
                for j in 0..<n { values[j] = lo + (hi - lo) * rng.unit() }
            case .normal(let mean, let std):
                guard std >= 0 else { throw InitError.badRule(parameter: p.name, reason: "normal std \(std) is negative") }
                for j in 0..<n { values[j] = mean + std * rng.normal() }
            case .kaimingNormal(let mode):
                // He et al. 2015 with the ReLU gain √2: std = √2 / √fan.
                let fan = mode == .fanIn ? fanIn : fanOut
                guard fan > 0 else { throw InitError.badRule(parameter: p.name, reason: "kaiming_normal needs a non-empty fan") }
                let std = (2.0 / Double(fan)).squareRoot()
                for j in 0..<n { values[j] = std * rng.normal() }
            case .kaimingUniformDefault:
                // PyTorch's Linear/Conv default, kaiming_uniform(a=√5): bound = 1/√fan_in.
                guard fanIn > 0 else { throw InitError.badRule(parameter: p.name, reason: "kaiming_uniform needs a non-empty fan") }
                let bound = 1 / Double(fanIn).squareRoot()
                for j in 0..<n { values[j] = bound * (2 * rng.unit() - 1) }
            case .fanInUniform(let fan):
                guard fan > 0 else { throw InitError.badRule(parameter: p.name, reason: "fan_in_uniform needs a positive fan") }
                let bound = 1 / Double(fan).squareRoot()
                for j in 0..<n { values[j] = bound * (2 * rng.unit() - 1) }
            case .unitColumns:
                // NormedLinear [in, out] of LDAM: uniform(−1, 1), then every column (fixed
                // index along axis 1) scaled to unit L2 norm.
                guard p.shape.count == 2 else { throw InitError.badRule(parameter: p.name, reason: "unit_columns needs a matrix") }
                let rows = p.shape[0], cols = p.shape[1]
                for j in 0..<n { values[j] = 2 * rng.unit() - 1 }
                for c in 0..<cols {
                    var norm = 0.0
                    for r in 0..<rows { norm += values[r * cols + c] * values[r * cols + c] }
                    norm = norm.squareRoot()
                    if norm > 0 { for r in 0..<rows { values[r * cols + c] /= norm } }
                }
            }
            g.parameters[i].initializer = .data(TensorData(dtype: p.dtype, shape: p.shape, values: values))
        }
        return g
    }
}
