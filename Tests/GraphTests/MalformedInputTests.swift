import Graph
import Testing

/// Each case is a broken file and the message it must produce; none may crash.
@Suite("Malformed text IR and invalid graphs")
struct MalformedInputTests {
    static let header = "graph t {\n  input x: f32[N, 3, 8, 8]\n"

    struct Case: CustomTestStringConvertible, Sendable {
        var label: String
        var text: String
        var expected: String
        var testDescription: String { label }
    }

    static let syntaxCases: [Case] = [
        Case(label: "empty file", text: "", expected: "t.kiln:1:1: expected 'graph', found end of file"),
        Case(label: "missing graph name", text: "graph {\n}", expected: "t.kiln:1:7: expected a graph name, found '{'"),
        Case(label: "unclosed graph", text: header, expected: "t.kiln:3:1: expected '}' to close the graph, found end of file"),
        Case(label: "unknown dtype", text: "graph t {\n  input x: f33[1]\n}", expected: "t.kiln:2:12: unknown element type 'f33' (expected f32, f16, bf16, f64, i8, u8, i32, i64 or bool)"),
        Case(label: "unterminated string", text: "graph t {\n  meta \"k\" = \"v\n}", expected: "t.kiln:2:14: unterminated string (strings end on the same line)"),
        Case(label: "bad character", text: "graph t {\n  input x: f32[1] $\n}", expected: "t.kiln:2:19: unexpected character '$'"),
        Case(label: "missing '=' after outputs", text: header + "  y: f32[N, 3, 8, 8] Relu(x)\n}", expected: "t.kiln:3:22: expected '=' after the node's outputs, found 'Relu'"),
        Case(label: "unclosed input list", text: header + "  y = Relu(x\n}", expected: "t.kiln:4:1: expected ')' to close the inputs of Relu, found '}'"),
        Case(label: "negative dimension", text: "graph t {\n  input x: f32[-2]\n}", expected: "t.kiln:2:16: a dimension must be a non-negative integer, found -2"),
        Case(label: "bad exponent", text: header + "  y = LeakyRelu(x) {alpha=1e}\n}", expected: "t.kiln:3:27: malformed number '1e': expected exponent digits"),
        Case(label: "integer overflow", text: "graph t {\n  const c: i64[1] = [99999999999999999999]\n}", expected: "t.kiln:2:22: integer 99999999999999999999 is out of range"),
        Case(label: "wrong value count", text: "graph t {\n  const c: i64[2, 2] = [1, 2, 3]\n}", expected: "t.kiln:2:24: 3 values for shape [2, 2] (4 elements)"),
        Case(label: "float in integer tensor", text: "graph t {\n  const c: i64[1] = [1.5]\n}", expected: "t.kiln:2:22: i64 tensor holds the non-integer 1.5"),
        Case(label: "unknown initialiser", text: "graph t {\n  param w: f32[2] = gaussian\n}", expected: "t.kiln:2:21: unknown initialiser 'gaussian'"),
        Case(label: "symbolic parameter", text: "graph t {\n  param w: f32[N, 2] = zeros\n}", expected: "t.kiln:2:12: parameter 'w' needs a static shape, got [N, 2]"),
        Case(label: "duplicate attribute", text: header + "  y = LeakyRelu(x) {alpha=0.1, alpha=0.2}\n}", expected: "t.kiln:3:32: attribute 'alpha' is given twice"),
        Case(label: "trailing garbage", text: "graph t {\n  input x: f32[1]\n  output x\n}\nextra", expected: "t.kiln:5:1: expected end of file after the graph's closing '}', found 'extra'"),
        Case(label: "bad escape", text: "graph t {\n  meta \"a\\q\" = \"b\"\n}", expected: "t.kiln:2:10: unknown escape '\\q'"),
        Case(label: "value out of range for u8", text: "graph t {\n  const c: u8[1] = [300]\n}", expected: "t.kiln:2:20: value 300 does not fit in u8"),
    ]

    static let graphCases: [Case] = [
        Case(label: "undefined value", text: header + "  y = Relu(z)\n  output y\n}", expected: "t.kiln:3: node 'y' (Relu): undefined value 'z'"),
        Case(label: "unknown op", text: header + "  y = Frobnicate(x)\n  output y\n}", expected: "t.kiln:3: node 'y' (Frobnicate): unknown op 'Frobnicate'"),
        Case(label: "wrong arity", text: header + "  y = Relu(x, x)\n  output y\n}", expected: "t.kiln:3: node 'y' (Relu): takes 1 inputs, got 2"),
        Case(label: "too many outputs", text: header + "  y, z = Relu(x)\n  output y\n}", expected: "t.kiln:3: node 'y' (Relu): has 1 outputs, got 2"),
        Case(label: "duplicate value name", text: header + "  x = Relu(x)\n  output x\n}", expected: "t.kiln:3: duplicate value name 'x' (output 0 of node 'x')"),
        Case(label: "duplicate node name", text: header + "  a = Relu(x) @n\n  b = Relu(a) @n\n  output b\n}", expected: "node 'n' (Relu): duplicate node name"),
        Case(label: "cycle", text: header + "  a = Add(x, b)\n  b = Relu(a)\n  output b\n}", expected: "t.kiln:4: node 'b' (Relu): cycle through nodes 'a' → 'b' → 'a'"),
        Case(label: "missing attribute", text: header + "  y = LRN(x)\n  output y\n}", expected: "t.kiln:3: node 'y' (LRN): missing required attribute 'size'"),
        Case(label: "ill-typed attribute", text: header + "  y = MaxPool(x) {kernel_shape=\"3x3\"}\n  output y\n}", expected: "t.kiln:3: node 'y' (MaxPool): attribute 'kernel_shape' must be ints, got string"),
        Case(label: "unknown attribute", text: header + "  y = Relu(x) {alpha=1.0}\n  output y\n}", expected: "t.kiln:3: node 'y' (Relu): unknown attribute 'alpha' (Relu takes none)"),
        Case(label: "channel mismatch", text: header + "  param w: f32[4, 2, 3, 3] = zeros\n  y = Conv(x, w)\n  output y\n}", expected: "t.kiln:4: node 'y' (Conv): X has 3 channels but W [4, 2, 3, 3] with group 1 expects 2"),
        Case(label: "broadcast mismatch", text: header + "  input b: f32[N, 4, 8, 8]\n  y = Add(x, b)\n  output y\n}", expected: "t.kiln:4: node 'y' (Add): shapes [N, 3, 8, 8] and [N, 4, 8, 8] do not broadcast"),
        Case(label: "declared type disagrees", text: header + "  y: f32[N, 3, 4, 4] = Relu(x)\n  output y\n}", expected: "t.kiln:3: node 'y' (Relu): output 'y' is declared f32[N, 3, 4, 4] but Relu gives f32[N, 3, 8, 8]"),
        Case(label: "impossible reshape", text: header + "  const s: i64[2] = [5, -1]\n  y = Reshape(x, s)\n  output y\n}", expected: "t.kiln:4: node 'y' (Reshape): cannot reshape [N, 3, 8, 8] (192*N elements) to [5, -1]"),
        Case(label: "window larger than input", text: header + "  y = MaxPool(x) {kernel_shape=[9, 9]}\n  output y\n}", expected: "t.kiln:3: node 'y' (MaxPool): the window (kernel 9, dilation 1) is larger than the padded input (8) on spatial axis 0"),
        Case(label: "non-constant reshape target", text: header + "  input s: i64[2]\n  y = Reshape(x, s)\n  output y\n}", expected: "t.kiln:4: node 'y' (Reshape): shape (input 1, 's') must be a constant for Kiln to infer shapes"),
        Case(label: "axis out of range", text: header + "  y = Softmax(x) {axis=4}\n  output y\n}", expected: "t.kiln:3: node 'y' (Softmax): axis 4 is out of range for rank 4"),
        Case(label: "undefined graph output", text: header + "  output nothing\n}", expected: "graph output 'nothing' is not defined"),
        Case(label: "no outputs", text: header + "}", expected: "graph 't' has no outputs"),
        Case(label: "mixed element types", text: header + "  input b: f64[N, 3, 8, 8]\n  y = Mul(x, b)\n  output y\n}", expected: "t.kiln:4: node 'y' (Mul): inputs: element types differ (f32 and f64)"),
        Case(label: "bad perm", text: header + "  y = Transpose(x) {perm=[0, 1, 1, 2]}\n  output y\n}", expected: "t.kiln:3: node 'y' (Transpose): perm [0, 1, 1, 2] is not a permutation of 0..<4"),
        Case(label: "Gemm inner dimension", text: "graph t {\n  input a: f32[N, 5]\n  param b: f32[4, 3] = zeros\n  y = Gemm(a, b)\n  output y\n}", expected: "t.kiln:4: node 'y' (Gemm): inner dimensions differ: A' is [N, 5], B' is [4, 3]"),
        Case(label: "per-axis scale of the wrong length", text: header + "  param s: f32[4] = ones\n  y = QuantizeLinear(x, s)\n  output y\n}", expected: "t.kiln:4: node 'y' (QuantizeLinear): a per-axis scale must be 1-D of x's size along axis 1 (3), got [4]"),
        Case(label: "quantizing to int32", text: header + "  param s: f32[] = ones\n  param z: i32[] = zeros\n  y = QuantizeLinear(x, s, z)\n  output y\n}", expected: "t.kiln:5: node 'y' (QuantizeLinear): quantizing to i32 is not supported (Kiln quantizes to uint8 and int8)"),
        Case(label: "QLinearConv bias of the wrong type", text: "graph t {\n  input x: u8[1, 2, 4, 4]\n  param s: f32[] = ones\n  param z: u8[] = zeros\n  param w: i8[3, 2, 1, 1] = zeros\n  param wz: i8[] = zeros\n  param b: f32[3] = zeros\n  y = QLinearConv(x, s, z, w, s, wz, s, z, b)\n  output y\n}", expected: "t.kiln:8: node 'y' (QLinearConv): B must be int32 [3], got f32[3]"),
        Case(label: "BatchNorm statistics of the wrong size", text: header + "  param s: f32[4] = ones\n  y = BatchNormalization(x, s, s, s, s)\n  output y\n}", expected: "t.kiln:4: node 'y' (BatchNormalization): scale must be [3] for X [N, 3, 8, 8], got [4]"),
    ]

    @Test("syntax errors give file:line:column and what was expected", arguments: syntaxCases)
    func syntax(_ c: Case) {
        #expect(parseError(c.text) == c.expected)
    }

    @Test("graph errors name the node and op", arguments: graphCases)
    func graph(_ c: Case) {
        let message = parseError(c.text)
        #expect(message?.hasSuffix(c.expected) == true, "got: \(message ?? "no error")")
    }

    @Test("errors are one line")
    func oneLine() {
        for c in Self.syntaxCases + Self.graphCases {
            #expect(parseError(c.text)?.contains("\n") == false)
        }
    }

    @Test("random truncations of a real model never crash")
    func truncations() throws {
        let text = try String(contentsOf: modelFiles()[0], encoding: .utf8)
        let chars = Array(text)
        var cuts = 0
        for end in stride(from: 0, to: chars.count, by: max(1, chars.count / 300)) {
            // Every prefix is either a valid graph (never, here: the closing brace is last) or an error.
            #expect(parseError(String(chars[..<end])) != nil)
            cuts += 1
        }
        #expect(cuts >= 300)
    }
}
