import Foundation
import Objectives

/// One option of a request: absent, its value, or the 400 its value earns. The error is thrown
/// when the handler reads the option, so a request with several problems is answered about the
/// first one the handler checks (input, then model, then the options in the handler's order).
struct Field<Value> {
    private let result: Result<Value?, APIError>

    init(_ value: Value?) { result = .success(value) }
    init(error: APIError) { result = .failure(error) }

    /// The value; nil when the request leaves the option out or sends null.
    func get() throws(APIError) -> Value? { try result.get() }

    /// The value passed through `transform`, which may refuse it with the option's error.
    func map<T>(_ transform: (Value) -> Result<T, APIError>) -> Field<T> {
        switch result {
        case .failure(let e): return Field<T>(error: e)
        case .success(nil): return Field<T>(nil)
        case .success(let v?):
            switch transform(v) {
            case .success(let t): return Field<T>(t)
            case .failure(let e): return Field<T>(error: e)
            }
        }
    }
}

/// Reads a request's options with one set of rules for every body type: a JSON body's own field
/// first (null counts as given), else the query's or the form's string. The rules are the ones
/// the service has always applied to JSONSerialization's values: a number or a boolean may come as
/// a string ("5", "true"), JSON true/false count as the numbers 1/0 and the numbers 1/0 as
/// true/false (NSNumber bridging), anything else of the wrong type is a 400 naming the field.
/// (One JSON detail differs from JSONSerialization's: of a key given twice, JSONDecoder keeps the first.)
struct RequestFields {
    static let fallbackKey = CodingUserInfoKey(rawValue: "bootmae.requestFields.fallback")!

    private let body: KeyedDecodingContainer<AnyKey>?
    private let strings: [String: String]

    /// Options given only as strings (query parameters, form fields).
    init(strings: [String: String]) {
        body = nil
        self.strings = strings
    }

    /// A JSON object body, with the strings of `decoder.userInfo[fallbackKey]` behind it. Every
    /// field the request type does not know is still read through, so that the body is refused as
    /// invalid JSON whatever field holds the fault (an unknown field is otherwise ignored).
    init<Keys: CodingKey & CaseIterable>(_ decoder: any Decoder, keys: Keys.Type) throws {
        let object: KeyedDecodingContainer<AnyKey>
        do {
            object = try decoder.container(keyedBy: AnyKey.self)
        } catch DecodingError.typeMismatch {
            if (try? decoder.unkeyedContainer()) != nil { throw APIError.invalid("the request body must be a JSON object") }
            throw APIError.invalid("the request body is not valid JSON")   // a string, number or boolean
        }
        let known = Keys.allCases.map(\.stringValue)
        let unknown = object.allKeys.map(\.stringValue).filter { !known.contains($0) }.sorted()
        for key in unknown { _ = try object.decode(AnyJSON.self, forKey: AnyKey(key)) }
        if !unknown.isEmpty { throw Self.unknownOptions(unknown, accepted: known) }
        body = object
        strings = decoder.userInfo[Self.fallbackKey] as? [String: String] ?? [:]
    }

    /// The 400 of options an endpoint does not take, as OpenAI's API answers them: a misspelt
    /// option must not silently fall back to its default. Names the first, the likely intended
    /// one, and every accepted option.
    static func unknownOptions(_ names: [String], accepted: [String]) -> APIError {
        let name = names[0]
        let guess = NameSuggestion.closest(to: name, among: accepted)
        let others = names.count > 1 ? " (and \(names.dropFirst().map { "'\($0)'" }.joined(separator: ", ")))" : ""
        return APIError.invalid("unknown option '\(name)'\(others)" + (guess.map { "; did you mean '\($0)'?" } ?? ".")
                                + " This endpoint takes: \(accepted.joined(separator: ", "))", param: name, code: "unknown_parameter")
    }

    /// Options of `names` (query parameters, form fields) that the request type does not take, as a 400.
    static func refuseUnknown<Keys: CodingKey & CaseIterable>(_ names: some Sequence<String>, _ keys: Keys.Type) throws {
        let accepted = Keys.allCases.map(\.stringValue)
        let unknown = names.filter { !accepted.contains($0) }.sorted()
        if !unknown.isEmpty { throw unknownOptions(unknown, accepted: accepted) }
    }

    /// An option takes one value: one given twice (`?top_k=1&top_k=5`, or two form fields of one
    /// name) is a 400 naming it, not one copy silently winning.
    static func refuseRepeated(_ names: [String], in place: String) throws {
        guard let name = names.first else { return }
        throw APIError.invalid("'\(name)' is given more than once in \(place): give each option once", param: name)
    }

    /// The raw source of one option.
    private enum Source {
        case absent
        case json(KeyedDecodingContainer<AnyKey>, AnyKey)
        case string(String)
    }

    private func source(_ key: some CodingKey) -> Source {
        let k = AnyKey(key.stringValue)
        if let body, body.contains(k) { return .json(body, k) }
        return strings[key.stringValue].map(Source.string) ?? .absent
    }

    /// Decodes `type` from the body, or nil when the value has another type. A value that is not
    /// even valid JSON (bad UTF-8, a number out of range) throws: the whole body is refused.
    private static func attempt<T: Decodable>(_ type: T.Type, _ body: KeyedDecodingContainer<AnyKey>, _ key: AnyKey) throws -> T? {
        do { return try body.decode(type, forKey: key) }
        catch DecodingError.typeMismatch { return nil }
        catch DecodingError.valueNotFound { return nil }
    }

    /// A wrong-typed value's error, once the value is known to be valid JSON.
    private static func refuse<T>(_ body: KeyedDecodingContainer<AnyKey>, _ key: AnyKey, _ error: APIError) throws -> Field<T> {
        _ = try body.decode(AnyJSON.self, forKey: key)
        return Field(error: error)
    }

    func string(_ key: some CodingKey) throws -> Field<String> {
        let name = key.stringValue
        switch source(key) {
        case .absent: return Field(nil)
        case .string(let s): return Field(s)
        case .json(let body, let k):
            if try body.decodeNil(forKey: k) { return Field(nil) }
            if let s = try Self.attempt(String.self, body, k) { return Field(s) }
            return try Self.refuse(body, k, APIError.invalid("'\(name)' must be a string", param: name))
        }
    }

    func bool(_ key: some CodingKey) throws -> Field<Bool> {
        let name = key.stringValue
        let error = APIError.invalid("'\(name)' must be true or false", param: name)
        switch source(key) {
        case .absent: return Field(nil)
        case .string(let s): return Bool(s.lowercased()).map { Field($0) } ?? Field(error: error)
        case .json(let body, let k):
            if try body.decodeNil(forKey: k) { return Field(nil) }
            if let b = try Self.attempt(Bool.self, body, k) { return Field(b) }
            if let s = try Self.attempt(String.self, body, k) { return Bool(s.lowercased()).map { Field($0) } ?? Field(error: error) }
            if let d = try Self.attempt(Double.self, body, k), d == 0 || d == 1 { return Field(d == 1) }
            return try Self.refuse(body, k, error)
        }
    }

    func number(_ key: some CodingKey) throws -> Field<Double> {
        let name = key.stringValue
        let error = APIError.invalid("'\(name)' must be a number", param: name)
        switch source(key) {
        case .absent: return Field(nil)
        case .string(let s): return Double(s).map { Field($0) } ?? Field(error: error)
        case .json(let body, let k):
            if try body.decodeNil(forKey: k) { return Field(nil) }
            if let s = try Self.attempt(String.self, body, k) { return Double(s).map { Field($0) } ?? Field(error: error) }
            if let d = try Self.attempt(Double.self, body, k) { return Field(d) }
            if let b = try Self.attempt(Bool.self, body, k) { return Field(b ? 1 : 0) }
            return try Self.refuse(body, k, error)
        }
    }

    /// A whole number checked by `valid`, which also gets non-integers, NaN and infinities;
    /// `message` is the 400's text when it refuses.
    func integer(_ key: some CodingKey, _ message: String, valid: (Double) -> Bool) throws -> Field<Int> {
        let name = key.stringValue
        return try number(key).map { d in
            guard valid(d) else { return .failure(APIError.invalid(message, param: name)) }
            return .success(Int(exactly: d.rounded(.towardZero)) ?? (d > 0 ? Int.max : Int.min))   // clamped, never a trap
        }
    }

    /// One of an enum's names; a 400 lists them all.
    func choice<E: RawRepresentable & CaseIterable>(_ key: some CodingKey, _: E.Type = E.self) throws -> Field<E> where E.RawValue == String {
        let name = key.stringValue
        return try string(key).map { s in
            E(rawValue: s).map { .success($0) } ?? .failure(APIError.invalid(
                "'\(name)' must be \(E.allCases.map(\.rawValue).joined(separator: " or "))", param: name))
        }
    }

    /// A list of numbers (an item that is not one is nil: the handler names what it needed), or a
    /// string: comma-separated numbers (the list form of a query parameter or form field, `0,1,14`),
    /// else an image (base64 or a data URI, which always hold a letter or a symbol other than a comma).
    func numbersOrImage(_ key: some CodingKey, neither message: String) throws -> Field<MaskInput> {
        let name = key.stringValue
        let error = APIError.invalid(message, param: name)
        func parse(_ s: String) -> MaskInput {
            // Digits with signs, points, commas and blanks are a list (the index check words what is
            // wrong with `-1` or `1.5`); anything else is an image.
            let isList = s.contains(where: \.isNumber) && s.allSatisfy { $0.isASCII && ($0.isNumber || ",+-. \t".contains($0)) }
            return isList ? .indices(s.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }) : .image(s)
        }
        switch source(key) {
        case .absent: return Field(nil)
        case .string(let s): return Field(parse(s))
        case .json(let body, let k):
            if try body.decodeNil(forKey: k) { return Field(nil) }
            if let s = try Self.attempt(String.self, body, k) { return Field(parse(s)) }
            guard let items = try Self.attempt([AnyJSON].self, body, k) else { return try Self.refuse(body, k, error) }
            return Field(.indices(items.map(\.number)))
        }
    }

    /// `input`: one image string or a list of them (a list item that is not a string is nil).
    func images(_ key: some CodingKey) throws -> Field<ImageInput> {
        let name = key.stringValue
        switch source(key) {
        case .absent: return Field(nil)
        case .string(let s): return Field(.one(s))
        case .json(let body, let k):
            if let s = try Self.attempt(String.self, body, k) { return Field(.one(s)) }
            if let items = try Self.attempt([AnyJSON].self, body, k) { return Field(.list(items.map(\.string))) }
            // null included: an explicit null is not a missing input.
            return try Self.refuse(body, k, APIError.invalid("\(name) must be a string: base64 image bytes or a data URI", param: name))
        }
    }
}

/// A coding key for any field name.
struct AnyKey: CodingKey {
    let stringValue: String
    init(_ name: String) { stringValue = name }
    init(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// Any JSON value, read through so that a fault anywhere in it refuses the body; it keeps what a
/// list item of `input` or `mask` needs (a string, a number).
struct AnyJSON: Decodable {
    private(set) var string: String?
    private(set) var number: Double?

    init(from decoder: any Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            while !list.isAtEnd { _ = try list.decode(AnyJSON.self) }
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            for key in object.allKeys { _ = try object.decode(AnyJSON.self, forKey: key) }
            return
        }
        let value = try decoder.singleValueContainer()
        if value.decodeNil() { return }
        // Bool before Double: JSON true is no number to JSONDecoder, but was 1 to the service.
        do { number = try value.decode(Bool.self) ? 1 : 0; return } catch DecodingError.typeMismatch {}
        do { string = try value.decode(String.self); return } catch DecodingError.typeMismatch {}
        number = try value.decode(Double.self)
    }
}
