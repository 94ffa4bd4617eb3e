//! Lexer and parser for the FHIRPath subset that epro evaluates.
//!
//! The parser accepts the grammar of the subset, not its meaning: paths,
//! function calls, literals, `%` variables and the operators `+ - * / &`,
//! `= != < <= > >=`, `and`, `or`. `lower` then checks which paths and
//! functions mean something epro can evaluate. Everything else FHIRPath
//! has (`|`, `xor`, `implies`, `div`, `mod`, `in`, `is`, `as`, indexers,
//! `$this`, date and quantity literals) is rejected here with its name.
//! `EXPRESSIONS.md` lists the subset.

use super::MAX_DEPTH;

/// A parsed FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A string literal, unescaped.
    String(String),
    /// A number literal as written, such as `0.0254`.
    Number(String),
    Boolean(bool),
    /// `{}`, the empty collection.
    Empty,
    /// `%name`: an environment variable such as `%resource`, or a
    /// `variable` extension.
    Variable(String),
    /// An identifier at the start of a path, such as `item` or `linkId`.
    Identifier(String),
    /// A function called without a target, such as `iif(...)`.
    Call {
        name: String,
        arguments: Vec<Node>,
    },
    /// `target.name` or `target.name(arguments)`.
    Member {
        target: Box<Node>,
        name: String,
        arguments: Option<Vec<Node>>,
    },
    /// `-operand`.
    Negate(Box<Node>),
    Binary {
        operator: Operator,
        left: Box<Node>,
        right: Box<Node>,
    },
}

/// A binary operator of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Multiply,
    Divide,
    Add,
    Subtract,
    Concatenate,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
    And,
    Or,
}

/// Parses `text` into a tree.
///
/// # Errors
///
/// Returns a message naming the first token or construct that is not in
/// the subset, or the syntax error.
pub(crate) fn parse(text: &str) -> Result<Node, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, position: 0 };
    let (node, _) = parser.expression()?;
    match parser.peek() {
        Token::End => Ok(node),
        token => Err(format!("unexpected {} after the end of the expression", token.describe())),
    }
}

/// Returns the linkId named by the last `where(linkId = '...')` of a path
/// such as `item.where(linkId='1.2')`, or `None` when the text is not such
/// a path.
pub(crate) fn last_link_id(text: &str) -> Option<String> {
    let mut node = parse(text).ok()?;
    loop {
        let Node::Member { target, name, arguments } = node else {
            return None;
        };
        if let (Some([Node::Binary { operator: Operator::Equal, left, right }]), "where") =
            (arguments.as_deref(), name.as_str())
        {
            match (left.as_ref(), right.as_ref()) {
                (Node::Identifier(field), Node::String(link_id)) | (Node::String(link_id), Node::Identifier(field))
                    if field == "linkId" =>
                {
                    return Some(link_id.clone());
                }
                _ => {}
            }
        }
        node = *target;
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Identifier(String),
    Variable(String),
    String(String),
    Number(String),
    Symbol(&'static str),
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Identifier(name) => format!("\"{name}\""),
            Token::Variable(name) => format!("\"%{name}\""),
            Token::String(text) => format!("string '{text}'"),
            Token::Number(text) => format!("number {text}"),
            Token::Symbol(symbol) => format!("\"{symbol}\""),
            Token::End => "end of the expression".to_owned(),
        }
    }
}

/// Symbols of the subset, longest first so that `<=` wins over `<`.
const SYMBOLS: &[&str] = &["!=", "<=", ">=", "(", ")", "{", "}", ",", ".", "=", "<", ">", "+", "-", "*", "/", "&"];

/// Symbols of full FHIRPath that the subset does not support.
const UNSUPPORTED_SYMBOLS: &[(&str, &str)] = &[
    ("!~", "the equivalence operator !~"),
    ("~", "the equivalence operator ~"),
    ("|", "the union operator |"),
    ("[", "indexers [ ]"),
    ("$", "$this, $index and $total"),
    ("@", "date and time literals"),
];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.starts_with("//") || rest.starts_with("/*") {
            return Err("comments are not supported".to_owned());
        }
        let Some(first) = rest.chars().next() else {
            tokens.push(Token::End);
            return Ok(tokens);
        };

        if first == '\'' {
            let (literal, length) = string_literal(rest)?;
            tokens.push(Token::String(literal));
            rest = &rest[length..];
        } else if first == '`' {
            let end = rest[1..].find('`').ok_or("unterminated `delimited` identifier")?;
            tokens.push(Token::Identifier(rest[1..=end].to_owned()));
            rest = &rest[end + 2..];
        } else if first == '%' {
            let after = &rest[1..];
            let (name, length) = if after.starts_with('\'') || after.starts_with('`') {
                return Err("quoted %variable names are not supported".to_owned());
            } else {
                identifier(after)
            };
            if name.is_empty() {
                return Err("% must be followed by a variable name".to_owned());
            }
            tokens.push(Token::Variable(name.to_owned()));
            rest = &after[length..];
        } else if first.is_ascii_digit() {
            let (number, length) = number_literal(rest)?;
            tokens.push(Token::Number(number.to_owned()));
            rest = &rest[length..];
        } else if first.is_ascii_alphabetic() || first == '_' {
            let (name, length) = identifier(rest);
            tokens.push(Token::Identifier(name.to_owned()));
            rest = &rest[length..];
        } else if let Some((symbol, name)) = UNSUPPORTED_SYMBOLS.iter().find(|(symbol, _)| rest.starts_with(symbol)) {
            return Err(format!("{name} (\"{symbol}\") is not supported"));
        } else if let Some(symbol) = SYMBOLS.iter().find(|symbol| rest.starts_with(**symbol)) {
            tokens.push(Token::Symbol(symbol));
            rest = &rest[symbol.len()..];
        } else {
            return Err(format!("unexpected character '{first}'"));
        }
    }
}

/// Reads an identifier and returns it with its length in bytes.
fn identifier(text: &str) -> (&str, usize) {
    let length = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    (&text[..length], length)
}

/// Reads a number: digits with an optional fraction. A Long (`10L`) or a
/// quantity (`5 'mg'`) is rejected.
fn number_literal(text: &str) -> Result<(&str, usize), String> {
    let digits = |from: usize| text[from..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |end| from + end);
    let mut length = digits(0);
    let has_fraction = text[length..].starts_with('.') && text[length + 1..].starts_with(|c: char| c.is_ascii_digit());
    if has_fraction {
        length = digits(length + 1);
    }
    let after = &text[length..];
    if after.starts_with('L') {
        return Err("Long literals (such as 10L) are not supported".to_owned());
    }
    if after.trim_start().starts_with('\'') {
        return Err("quantity literals (such as 5 'mg') are not supported".to_owned());
    }
    Ok((&text[..length], length))
}

/// Reads a single-quoted string literal and returns its value and length
/// in bytes, resolving the FHIRPath escapes.
fn string_literal(text: &str) -> Result<(String, usize), String> {
    let mut value = String::new();
    let mut characters = text.char_indices().skip(1);
    while let Some((position, character)) = characters.next() {
        match character {
            '\'' => return Ok((value, position + 1)),
            '\\' => {
                let Some((_, escaped)) = characters.next() else {
                    break;
                };
                match escaped {
                    '\'' | '"' | '`' | '\\' | '/' => value.push(escaped),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'f' => value.push('\u{c}'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| characters.next().map(|(_, digit)| digit)).collect();
                        let code = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        value.push(code.ok_or_else(|| format!("invalid escape \\u{hex}"))?);
                    }
                    other => return Err(format!("invalid escape \\{other} in a string")),
                }
            }
            other => value.push(other),
        }
    }
    Err("unterminated string literal".to_owned())
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

/// A node with the depth of its tree, counted as it is built so that deep
/// input is rejected before anything recurses over it.
type Parsed = (Node, usize);

/// Keywords that FHIRPath uses as operators and the subset does not.
const UNSUPPORTED_KEYWORDS: &[&str] = &["xor", "implies", "div", "mod", "in", "contains", "is", "as"];

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.position).unwrap_or(&Token::End)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        self.position += 1;
        token
    }

    fn expect(&mut self, symbol: &'static str) -> Result<(), String> {
        match self.advance() {
            Token::Symbol(found) if found == symbol => Ok(()),
            token => Err(format!("expected \"{symbol}\" but found {}", token.describe())),
        }
    }

    fn expression(&mut self) -> Result<Parsed, String> {
        self.binary(0)
    }

    /// Parses the operators of precedence `level` and tighter. Levels, from
    /// loosest: `or`, `and`, equality, comparison, additive,
    /// multiplicative.
    fn binary(&mut self, level: usize) -> Result<Parsed, String> {
        const LEVELS: usize = 6;
        if level == LEVELS {
            return self.unary();
        }
        let (mut left, mut depth) = self.binary(level + 1)?;
        loop {
            let token = self.peek().clone();
            if let Token::Identifier(keyword) = &token
                && UNSUPPORTED_KEYWORDS.contains(&keyword.as_str())
            {
                return Err(format!("the operator \"{keyword}\" is not supported"));
            }
            let Some(operator) = operator_at(&token, level) else {
                return Ok((left, depth));
            };
            self.advance();
            let (right, right_depth) = self.binary(level + 1)?;
            depth = checked_depth(depth.max(right_depth) + 1)?;
            left = Node::Binary { operator, left: Box::new(left), right: Box::new(right) };
        }
    }

    fn unary(&mut self) -> Result<Parsed, String> {
        match self.peek() {
            Token::Symbol("-") => {
                self.advance();
                let (operand, depth) = self.unary()?;
                Ok((Node::Negate(Box::new(operand)), checked_depth(depth + 1)?))
            }
            Token::Symbol("+") => {
                self.advance();
                self.unary()
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Parsed, String> {
        let (mut node, mut depth) = self.term()?;
        while self.peek() == &Token::Symbol(".") {
            self.advance();
            let name = match self.advance() {
                Token::Identifier(name) => name,
                token => return Err(format!("expected a name after \".\" but found {}", token.describe())),
            };
            let (arguments, arguments_depth) = self.optional_arguments()?;
            depth = checked_depth(depth.max(arguments_depth) + 1)?;
            node = Node::Member { target: Box::new(node), name, arguments };
        }
        Ok((node, depth))
    }

    fn term(&mut self) -> Result<Parsed, String> {
        match self.advance() {
            Token::String(text) => Ok((Node::String(text), 1)),
            Token::Number(text) => Ok((Node::Number(text), 1)),
            Token::Variable(name) => Ok((Node::Variable(name), 1)),
            Token::Symbol("(") => {
                let (node, depth) = self.expression()?;
                self.expect(")")?;
                Ok((node, depth))
            }
            Token::Symbol("{") => {
                self.expect("}")?;
                Ok((Node::Empty, 1))
            }
            Token::Identifier(name) if name == "true" || name == "false" => Ok((Node::Boolean(name == "true"), 1)),
            Token::Identifier(name) => match self.optional_arguments()? {
                (Some(arguments), depth) => Ok((Node::Call { name, arguments }, checked_depth(depth + 1)?)),
                (None, _) => Ok((Node::Identifier(name), 1)),
            },
            token => Err(format!("unexpected {}", token.describe())),
        }
    }

    /// Reads `(arguments)` when the next token opens one, and returns the
    /// deepest argument's depth.
    fn optional_arguments(&mut self) -> Result<(Option<Vec<Node>>, usize), String> {
        if self.peek() != &Token::Symbol("(") {
            return Ok((None, 0));
        }
        self.advance();
        let mut arguments = Vec::new();
        let mut depth = 0;
        if self.peek() == &Token::Symbol(")") {
            self.advance();
            return Ok((Some(arguments), depth));
        }
        loop {
            let (argument, argument_depth) = self.expression()?;
            arguments.push(argument);
            depth = depth.max(argument_depth);
            match self.advance() {
                Token::Symbol(",") => continue,
                Token::Symbol(")") => return Ok((Some(arguments), depth)),
                token => return Err(format!("expected \",\" or \")\" but found {}", token.describe())),
            }
        }
    }
}

fn operator_at(token: &Token, level: usize) -> Option<Operator> {
    let operator = match (level, token) {
        (0, Token::Identifier(keyword)) if keyword == "or" => Operator::Or,
        (1, Token::Identifier(keyword)) if keyword == "and" => Operator::And,
        (2, Token::Symbol("=")) => Operator::Equal,
        (2, Token::Symbol("!=")) => Operator::NotEqual,
        (3, Token::Symbol("<")) => Operator::Less,
        (3, Token::Symbol("<=")) => Operator::LessOrEqual,
        (3, Token::Symbol(">")) => Operator::Greater,
        (3, Token::Symbol(">=")) => Operator::GreaterOrEqual,
        (4, Token::Symbol("+")) => Operator::Add,
        (4, Token::Symbol("-")) => Operator::Subtract,
        (4, Token::Symbol("&")) => Operator::Concatenate,
        (5, Token::Symbol("*")) => Operator::Multiply,
        (5, Token::Symbol("/")) => Operator::Divide,
        _ => return None,
    };
    Some(operator)
}

/// Checks a depth against the parser's limit. The limit is twice the
/// evaluator's, because a path such as
/// `%resource.item.where(...).answer.value` adds a level per step but
/// compiles into one call.
fn checked_depth(depth: usize) -> Result<usize, String> {
    if depth > 2 * MAX_DEPTH {
        return Err(format!("the expression is nested more than {} levels deep", 2 * MAX_DEPTH));
    }
    Ok(depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_precedence_comparison_before_equality() {
        let node = parse("a = 1 < 2").expect("parses");
        let Node::Binary { operator, right, .. } = node else {
            panic!("expected a binary node, got {node:?}");
        };
        assert_eq!(operator, Operator::Equal);
        assert!(matches!(*right, Node::Binary { operator: Operator::Less, .. }));
    }

    #[test]
    fn parse_concatenation_binds_tighter_than_equality() {
        let node = parse("a & b = 'chicken'").expect("parses");
        let Node::Binary { operator, left, .. } = node else {
            panic!("expected a binary node, got {node:?}");
        };
        assert_eq!(operator, Operator::Equal);
        assert!(matches!(*left, Node::Binary { operator: Operator::Concatenate, .. }));
    }

    #[test]
    fn parse_string_escapes_resolved() {
        assert_eq!(parse(r"'it\'s \u00e9'"), Ok(Node::String("it's é".to_owned())));
    }

    #[test]
    fn parse_rejects_unsupported_constructs() {
        let cases = [
            ("a | b", "union"),
            ("a xor b", "xor"),
            ("a.b[0]", "indexers"),
            ("@2020-01-01", "date and time"),
            ("5 'mg'", "quantity"),
            ("10L", "Long"),
            ("a ~ b", "equivalence"),
            ("$this", "$this"),
            ("'open", "unterminated"),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
