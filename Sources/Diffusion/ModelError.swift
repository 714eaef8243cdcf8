/// Errors from loading and running models; each names the file, component and key concerned.
public enum ModelError: Error, CustomStringConvertible, Sendable {
    case missingKeys(component: String, keys: [String], file: String)
    case unexpectedKeys(component: String, keys: [String], file: String)
    case shapeMismatch(component: String, key: String, expected: [Int], got: [Int], file: String)
    case wrongFamily(file: String, detail: String)
    case badConfig(file: String, detail: String)
    case invalidInput(String)

    static func list(_ keys: [String]) -> String {
        let shown = keys.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
        return keys.count > 5 ? "\(shown) and \(keys.count - 5) more" : shown
    }

    public var description: String {
        switch self {
        case let .missingKeys(c, k, f): return "\(f): \(c): missing key\(k.count == 1 ? "" : "s") \(Self.list(k))"
        case let .unexpectedKeys(c, k, f): return "\(f): \(c): unexpected key\(k.count == 1 ? "" : "s") \(Self.list(k))"
        case let .shapeMismatch(c, k, e, g, f): return "\(f): \(c): key '\(k)' has shape \(g), the model expects \(e)"
        case let .wrongFamily(f, d): return "\(f): \(d)"
        case let .badConfig(f, d): return "\(f): \(d)"
        case let .invalidInput(d): return d
        }
    }
}
