/// A position in a workflow file (1-based line and column).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    /// `file:line:column`; a location with line 0 (a command-line `--set`) prints its file part only.
    public var description: String { line > 0 ? "\(file):\(line):\(column)" : file }
}

/// One problem found in a workflow, printed as `file:line:column: node 'id' input 'x': message`.
public struct Diagnostic: Error, Sendable, CustomStringConvertible, Hashable {
    public var location: SourceLocation
    public var nodeID: String?
    public var input: String?
    public var message: String

    public init(_ location: SourceLocation, node: String? = nil, input: String? = nil, _ message: String) {
        self.location = location
        self.nodeID = node
        self.input = input
        self.message = message
    }

    public var description: String {
        var s = "\(location): "
        if let n = nodeID { s += "node '\(n)' " }
        if let i = input { s += "input '\(i)' " }
        if nodeID != nil || input != nil { s.removeLast(); s += ": " }
        return s + message
    }
}

/// A workflow that did not validate: every problem at once, in file order.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics.sorted {
            ($0.location.line, $0.location.column) < ($1.location.line, $1.location.column)
        }
    }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
