//! The account rules, without IO: what an email and a password must be, who may sign in, and
//! what a change of status or role does.

use platform::auth::Role;
use serde::{Deserialize, Serialize};

/// The longest email address (RFC 5321's path limit less its brackets).
pub const MAX_EMAIL: usize = 254;
/// The shortest password taken (NIST SP 800-63B).
pub const MIN_PASSWORD: usize = 8;
/// The longest password taken: long enough for any passphrase, short enough that hashing it
/// costs no more than any other.
pub const MAX_PASSWORD: usize = 128;

/// What an email address must look like, in the API's schema and here alike: the usual
/// `local@domain` of letters, digits and `._%+-`, the domain's labels of letters, digits and
/// inner hyphens (at least two labels). Addresses beyond it (quoted local parts, IP literals,
/// non-ASCII) are refused rather than half understood.
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

static EMAIL: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(EMAIL_PATTERN).ok());

/// An email address as accounts are keyed by it: trimmed and lower-cased, so that
/// `Ann@Example.com` and `ann@example.com` are one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Checks an address against [`EMAIL_PATTERN`] and [`MAX_EMAIL`]; whether it receives mail
    /// is not this service's to know.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        let shaped = EMAIL.as_ref().is_some_and(|re| re.is_match(email));
        if !shaped || email.len() > MAX_EMAIL {
            return Err(format!(
                "email must be an address like name@example.com of at most {MAX_EMAIL} characters"
            ));
        }
        Ok(Self(email.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a new password's length, in characters.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(format!("password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"));
    }
    Ok(())
}

/// Whether an account may sign in and book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountStatus {
    Active,
    Blocked,
}

impl AccountStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "ACTIVE",
            AccountStatus::Blocked => "BLOCKED",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(AccountStatus::Active),
            "BLOCKED" => Some(AccountStatus::Blocked),
            _ => None,
        }
    }
}

impl From<AccountStatus> for contracts::UserStatus {
    fn from(s: AccountStatus) -> Self {
        match s {
            AccountStatus::Active => contracts::UserStatus::Active,
            AccountStatus::Blocked => contracts::UserStatus::Blocked,
        }
    }
}

/// The stored form of a role.
pub fn role_str(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Admin => "admin",
    }
}

/// Reads the stored form of a role.
pub fn parse_role(s: &str) -> Option<Role> {
    match s {
        "user" => Some(Role::User),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

/// Why a sign-in is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInRefused {
    /// No account has this email, or the password is not its password: the two are not told
    /// apart, so no one learns which emails have accounts.
    InvalidCredentials,
    /// The password is right, but an admin has blocked the account.
    Blocked,
}

/// Whether the holder of a password may sign in to `account` (`None`: no account has the
/// email). A blocked account is named only to whoever knows its password.
pub fn sign_in(account: Option<AccountStatus>, password_matches: bool) -> Result<(), SignInRefused> {
    match account {
        Some(_) if !password_matches => Err(SignInRefused::InvalidCredentials),
        None => Err(SignInRefused::InvalidCredentials),
        Some(AccountStatus::Blocked) => Err(SignInRefused::Blocked),
        Some(AccountStatus::Active) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn an_email_is_one_account_whatever_its_case_and_surrounding_spaces() {
        assert_eq!(Email::parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        assert_eq!(
            Email::parse("a.b+tickets@mail.example.co.kr").unwrap().as_str(),
            "a.b+tickets@mail.example.co.kr"
        );
    }

    #[test]
    fn an_email_without_the_shape_of_an_address_is_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@@example.com",
            "a b@example.com",
            "ann@example..com",
            "ann@-example.com",
            "ann@example.com\u{7}",
            "änn@example.com",
            "\"ann\"@example.com",
            "ann@[127.0.0.1]",
            long.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_password_has_eight_to_a_hundred_and_twenty_eight_characters() {
        assert!(check_password("1234567").is_err());
        // Any characters: a passphrase of spaces is the user's to choose (NIST SP 800-63B).
        assert!(check_password("        ").is_ok());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"가".repeat(128)).is_ok());
        assert!(check_password(&"a".repeat(129)).is_err());
    }

    #[test]
    fn only_the_holder_of_the_password_learns_the_account_is_blocked() {
        use AccountStatus::*;
        assert_eq!(sign_in(None, false), Err(SignInRefused::InvalidCredentials));
        assert_eq!(sign_in(Some(Active), false), Err(SignInRefused::InvalidCredentials));
        assert_eq!(sign_in(Some(Blocked), false), Err(SignInRefused::InvalidCredentials));
        assert_eq!(sign_in(Some(Blocked), true), Err(SignInRefused::Blocked));
        assert_eq!(sign_in(Some(Active), true), Ok(()));
    }

    #[test]
    fn statuses_and_roles_read_back_what_they_store() {
        for s in [AccountStatus::Active, AccountStatus::Blocked] {
            assert_eq!(AccountStatus::parse(s.as_str()), Some(s));
        }
        for r in [Role::User, Role::Admin] {
            assert_eq!(parse_role(role_str(r)), Some(r));
        }
    }
}
