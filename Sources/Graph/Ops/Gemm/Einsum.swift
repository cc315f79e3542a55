// Einsum-12: a sum of products over the labelled axes of its inputs, written as an equation
// ("bij,bjk->bik"; "..." stands for the same leading axes of every input, broadcast; without
// "->" the output takes the ellipsis, then the labels seen once, in alphabetical order).
// Its reference kernel loops over every label; the compiled path lowers the matrix-product
// forms onto MatMul.

/// A parsed equation: per input and for the output, the label of each axis. Letters are
/// labels by their character; the ellipsis's axes take negative labels −1, −2, … from the
/// right (so that inputs of different rank align as broadcasting does).
public struct EinsumEquation: Sendable, Equatable {
    public var inputs: [[Int]]
    public var output: [Int]

    /// Parses `equation` for inputs of `ranks`; the error says what is wrong.
    public init(_ equation: String, ranks: [Int]) throws(EinsumError) {
        let text = equation.filter { !$0.isWhitespace }
        let sides = text.components(separatedBy: "->")
        guard sides.count <= 2 else { throw EinsumError("more than one \"->\"") }
        let terms = sides[0].components(separatedBy: ",")
        guard terms.count == ranks.count else { throw EinsumError("\(terms.count) input terms for \(ranks.count) inputs") }
        var ellipsisRank = 0
        inputs = []
        for (term, rank) in zip(terms, ranks) {
            let (letters, hasEllipsis, before) = try Self.parseTerm(term)
            let covered = rank - letters.count
            guard hasEllipsis ? covered >= 0 : covered == 0 else {
                throw EinsumError("term \"\(term)\" has \(letters.count) labels for an input of rank \(rank)")
            }
            if hasEllipsis { ellipsisRank = max(ellipsisRank, covered) }
            let ellipsis = hasEllipsis ? (0..<covered).map { -(covered - $0) } : []
            inputs.append(Array(letters[..<before]) + ellipsis + Array(letters[before...]))
        }
        let allEllipsis = (0..<ellipsisRank).map { -(ellipsisRank - $0) }
        if sides.count == 2 {
            let (letters, hasEllipsis, before) = try Self.parseTerm(sides[1])
            guard Set(letters).count == letters.count else { throw EinsumError("a label repeats in the output \"\(sides[1])\"") }
            let seen = Set(inputs.joined())
            for l in letters where !seen.contains(l) { throw EinsumError("output label '\(Character(UnicodeScalar(UInt8(l))))' is in no input") }
            output = Array(letters[..<before]) + (hasEllipsis ? allEllipsis : []) + Array(letters[before...])
        } else {
            var counts: [Int: Int] = [:]
            for l in inputs.joined() where l > 0 { counts[l, default: 0] += 1 }
            output = allEllipsis + counts.filter { $0.value == 1 }.keys.sorted()
        }
    }

    /// The letters of a term (as labels), whether it has an ellipsis, and how many letters come before it.
    private static func parseTerm(_ term: String) throws(EinsumError) -> ([Int], Bool, Int) {
        let parts = term.components(separatedBy: "...")
        guard parts.count <= 2 else { throw EinsumError("more than one ellipsis in \"\(term)\"") }
        var letters: [Int] = []
        for part in parts {
            for c in part.unicodeScalars {
                guard (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") else { throw EinsumError("'\(c)' in \"\(term)\" is not a letter") }
                letters.append(Int(c.value))
            }
        }
        return (letters, parts.count == 2, parts[0].count)
    }

    /// Each label's size over `shapes` (ellipsis axes of size 1 broadcast), or the clash.
    public func sizes(_ shapes: [[Dim]]) throws(EinsumError) -> [Int: Dim] {
        var size: [Int: Dim] = [:]
        for (labels, shape) in zip(inputs, shapes) {
            for (l, d) in zip(labels, shape) {
                guard let s = size[l], s != d else { size[l] = d; continue }
                if l < 0 && d == Dim(1) { continue }
                if l < 0 && s == Dim(1) { size[l] = d; continue }
                throw EinsumError("label \(l > 0 ? "'\(Character(UnicodeScalar(UInt8(l))))'" : "of the ellipsis") has sizes \(s) and \(d)")
            }
        }
        return size
    }
}

public struct EinsumError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}

let einsumSchema = OpSchema("Einsum", inputs: 1...variadic, attributes: [.required("equation", .string)]) { ctx in
    let types = try (0..<ctx.inputCount).map { try ctx.input($0) }
    for t in types.dropFirst() { try ctx.requireSameType(TensorType(types[0].dtype, []), TensorType(t.dtype, []), "inputs") }
    guard types[0].dtype != .bool else { throw ctx.error("Einsum is not defined on bool tensors") }
    do {
        let eq = try EinsumEquation(ctx.string("equation"), ranks: types.map(\.rank))
        let size = try eq.sizes(types.map(\.shape))
        ctx.setOutput(0, TensorType(types[0].dtype, eq.output.map { size[$0]! }))
    } catch {
        throw ctx.error("equation \"\(ctx.string("equation"))\": \(error)")
    }
}

/// Every combination of the labels' values: the output's labels outermost, then the summed ones.
let einsumReference: RefKernel = { ctx in
    let xs = try ctx.inputs.indices.map { try ctx.input($0) }
    let eq: EinsumEquation, size: [Int: Dim]
    do {
        eq = try EinsumEquation(ctx.string("equation"), ranks: xs.map { $0.shape.count })
        size = try eq.sizes(xs.map { $0.shape.map { Dim($0) } })
    } catch { throw ctx.fail("\(error)") }
    let summed = Set(eq.inputs.joined()).subtracting(eq.output).sorted()
    let labels = eq.output + summed
    let extents = labels.map { size[$0]!.value ?? 0 }
    let position = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
    // Per input, the stride of each label's counter (0 where the input broadcasts it).
    let steps: [[Int]] = xs.indices.map { k in
        let st = strides(xs[k].shape)
        var s = [Int](repeating: 0, count: labels.count)
        for (axis, l) in eq.inputs[k].enumerated() where xs[k].shape[axis] != 1 || extents[position[l]!] == 1 { s[position[l]!] += st[axis] }
        return s
    }
    let outCount = eq.output.reduce(1) { $0 * (size[$1]!.value ?? 0) }
    let sumCount = summed.reduce(1) { $0 * (size[$1]!.value ?? 0) }
    // Every combination of the labels is visited: a product that large is refused, not wrapped.
    let (combinations, overflow) = outCount.multipliedReportingOverflow(by: sumCount)
    guard !overflow else { throw ctx.fail("\(outCount) outputs × \(sumCount) summed terms is too many to evaluate") }
    var out = [Double](repeating: 0, count: outCount)
    var counter = [Int](repeating: 0, count: labels.count)
    var offsets = [Int](repeating: 0, count: xs.count)
    // One odometer over every label, the last fastest: combination c adds to output c / sumCount.
    for c in 0..<combinations {
        var product = 1.0
        for k in xs.indices { product *= xs[k].value(offsets[k]) }
        out[c / sumCount] += product
        var d = labels.count - 1
        while d >= 0 {
            counter[d] += 1
            for k in xs.indices { offsets[k] += steps[k][d] }
            if counter[d] < extents[d] { break }
            for k in xs.indices { offsets[k] -= steps[k][d] * counter[d] }
            counter[d] = 0
            d -= 1
        }
    }
    return [xs[0].isFloat ? HostTensor(dtype: xs[0].dtype, shape: ctx.outShape(), f: out)
                          : HostTensor(dtype: xs[0].dtype, shape: ctx.outShape(), i: out.map { wrap(TensorData.clampedInt64($0), xs[0].dtype) })]
}
