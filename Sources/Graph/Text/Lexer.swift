/// Tokens of the text IR.
enum TokenKind: Equatable {
    case identifier(String)
    case string(String)
    case number(String)
    case punct(Character)   // { } ( ) [ ] , : = * @ - →
    case arrow
    case end
}

struct Token {
    var kind: TokenKind
    var line: Int
    var column: Int

    var text: String {
        switch kind {
        case .identifier(let s): return "'\(s)'"
        case .string(let s): return "string \"\(s)\""
        case .number(let s): return "number \(s)"
        case .punct(let c): return "'\(c)'"
        case .arrow: return "'->'"
        case .end: return "end of file"
        }
    }
}

struct SyntaxError: Error {
    var line: Int
    var column: Int
    var message: String
}

/// Splits text IR into tokens, tracking line and column (1-based, columns in characters).
struct Lexer {
    private let chars: [Character]
    private var i = 0
    private var line = 1
    private var column = 1

    init(_ text: String) { chars = Array(text) }

    static func isIdentifierStart(_ c: Character) -> Bool { c == "_" || (c.isASCII && c.isLetter) }
    static func isIdentifierBody(_ c: Character) -> Bool { isIdentifierStart(c) || (c.isASCII && c.isNumber) || c == "." }

    private mutating func advance() {
        if chars[i] == "\n" { line += 1; column = 1 } else { column += 1 }
        i += 1
    }

    private func peek(_ k: Int = 0) -> Character? { i + k < chars.count ? chars[i + k] : nil }

    mutating func tokenize() throws(SyntaxError) -> [Token] {
        var out: [Token] = []
        while true {
            // Whitespace and comments.
            while let c = peek() {
                if c == "#" { while let d = peek(), d != "\n" { advance() } }
                else if c.isWhitespace { advance() }
                else { break }
            }
            let l = line, col = column
            guard let c = peek() else {
                out.append(Token(kind: .end, line: l, column: col))
                return out
            }
            if Lexer.isIdentifierStart(c) {
                var s = ""
                while let d = peek(), Lexer.isIdentifierBody(d) { s.append(d); advance() }
                out.append(Token(kind: .identifier(s), line: l, column: col))
            } else if c.isASCII && c.isNumber || (c == "-" && (peek(1)?.isNumber ?? false) && peek(1)!.isASCII) {
                out.append(Token(kind: .number(try number()), line: l, column: col))
            } else if c == "\"" {
                out.append(Token(kind: .string(try string()), line: l, column: col))
            } else if c == "-" && peek(1) == ">" {
                advance(); advance()
                out.append(Token(kind: .arrow, line: l, column: col))
            } else if "{}()[],:=*@-→".contains(c) {
                advance()
                out.append(Token(kind: .punct(c), line: l, column: col))
            } else {
                throw SyntaxError(line: l, column: col, message: "unexpected character '\(c)'")
            }
        }
    }

    private mutating func number() throws(SyntaxError) -> String {
        let l = line, col = column
        var s = ""
        func digits() { while let d = peek(), d.isASCII, d.isNumber { s.append(d); advance() } }
        if peek() == "-" { s.append("-"); advance() }
        digits()
        if peek() == ".", let n = peek(1), n.isASCII, n.isNumber { s.append("."); advance(); digits() }
        else if peek() == ".", !(peek(1).map(Lexer.isIdentifierStart) ?? false) { s.append("."); advance() }
        if let e = peek(), e == "e" || e == "E" {
            s.append(e); advance()
            if let sign = peek(), sign == "+" || sign == "-" { s.append(sign); advance() }
            guard let d = peek(), d.isASCII, d.isNumber else {
                throw SyntaxError(line: l, column: col, message: "malformed number '\(s)': expected exponent digits")
            }
            digits()
        }
        if let d = peek(), Lexer.isIdentifierStart(d) {
            throw SyntaxError(line: line, column: column, message: "malformed number '\(s)\(d)…'")
        }
        return s
    }

    private mutating func string() throws(SyntaxError) -> String {
        let l = line, col = column
        advance()  // opening quote
        var s = ""
        while true {
            guard let c = peek() else { throw SyntaxError(line: l, column: col, message: "unterminated string") }
            if c == "\n" { throw SyntaxError(line: l, column: col, message: "unterminated string (strings end on the same line)") }
            let el = line, ec = column
            advance()
            if c == "\"" { return s }
            if c != "\\" { s.append(c); continue }
            guard let e = peek() else { throw SyntaxError(line: l, column: col, message: "unterminated string") }
            advance()
            switch e {
            case "\"": s.append("\"")
            case "\\": s.append("\\")
            case "n": s.append("\n")
            case "t": s.append("\t")
            case "r": s.append("\r")
            case "u":
                guard peek() == "{" else { throw SyntaxError(line: el, column: ec, message: "expected '{' after \\u") }
                advance()
                var hex = ""
                while let h = peek(), h != "}" { hex.append(h); advance() }
                guard peek() == "}", let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else {
                    throw SyntaxError(line: el, column: ec, message: "malformed \\u{…} escape")
                }
                advance()
                s.unicodeScalars.append(scalar)
            default:
                throw SyntaxError(line: el, column: ec, message: "unknown escape '\\\(e)'")
            }
        }
    }
}
