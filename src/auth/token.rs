//! Auth tokens, as etcd's `--auth-token` chooses them:
//! - `simple`: "<16 random letters>.<raft index>", assigned when the
//!   Authenticate entry is applied (so every member knows it), kept in
//!   memory for `--auth-token-ttl` seconds after its last use;
//! - `jwt,pub-key=…,priv-key=…,sign-method=…[,ttl=…]`: a signed JWT with the
//!   user name and auth revision, valid until it expires.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::{AuthInfo, Error};

/// Length of a simple token's random part (etcd's defaultSimpleTokenLength).
const SIMPLE_TOKEN_LENGTH: usize = 16;
/// etcd's default JWT lifetime.
const DEFAULT_JWT_TTL: Duration = Duration::from_secs(300);

pub enum Provider {
    Simple(SimpleTokens),
    Jwt(JwtTokens),
}

impl Provider {
    /// Parses `--auth-token` (etcd's NewTokenProvider); `ttl` is
    /// `--auth-token-ttl`, used by simple tokens.
    pub fn from_options(options: &str, ttl: Duration) -> anyhow::Result<Provider> {
        let mut parts = options.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut opts = HashMap::new();
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                anyhow::bail!("auth: invalid auth options (option {part:?} in --auth-token)");
            };
            if opts.insert(k.to_string(), v.to_string()).is_some() {
                anyhow::bail!("auth: invalid auth options (duplicate {k:?} in --auth-token)");
            }
        }
        match kind {
            "simple" | "" => Ok(Provider::Simple(SimpleTokens::new(ttl))),
            "jwt" => Ok(Provider::Jwt(JwtTokens::new(&opts)?)),
            other => anyhow::bail!("auth: invalid auth options (unknown token type {other:?})"),
        }
    }

    /// The random part of a simple token, chosen before proposing;
    /// empty for JWT.
    pub fn gen_prefix(&self) -> String {
        match self {
            Provider::Simple(_) => random_letters(SIMPLE_TOKEN_LENGTH),
            Provider::Jwt(_) => String::new(),
        }
    }
}

fn random_letters(n: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // no /dev/urandom: fall back to the clock and a hasher's random keys
        use std::hash::{BuildHasher, Hasher};
        for (i, b) in bytes.iter_mut().enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            *b = h.finish() as u8;
        }
    }
    bytes
        .iter()
        .map(|b| LETTERS[*b as usize % LETTERS.len()] as char)
        .collect()
}

/// Simple tokens in memory: token → (user, expiry).
pub struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl SimpleTokens {
    fn new(ttl: Duration) -> Self {
        SimpleTokens {
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The raft index a simple token was assigned at (it is valid on a
    /// member only once that member applied the index).
    pub fn index_of(token: &str) -> Option<u64> {
        let (prefix, index) = token.split_once('.')?;
        if prefix.is_empty() || index.contains('.') {
            return None;
        }
        index.parse().ok()
    }

    pub fn assign(&self, user: &str, prefix: &str, index: u64) -> String {
        let token = format!("{prefix}.{index}");
        let now = Instant::now();
        let mut tokens = self.lock();
        tokens.retain(|_, (_, expiry)| *expiry > now);
        tokens.insert(token.clone(), (user.to_string(), now + self.ttl));
        token
    }

    /// The user of a live token; using it extends its life (etcd's
    /// resetSimpleToken).
    pub fn user(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self.lock();
        match tokens.get_mut(token) {
            Some((user, expiry)) if *expiry > now => {
                *expiry = now + self.ttl;
                Some(user.clone())
            }
            Some(_) => {
                tokens.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn invalidate_user(&self, user: &str) {
        self.lock().retain(|_, (u, _)| u != user);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// Signed tokens; members need no shared state beyond the keys.
pub struct JwtTokens {
    algorithm: Algorithm,
    /// `None` with only a public key: this member verifies but cannot sign.
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

impl JwtTokens {
    fn new(opts: &HashMap<String, String>) -> anyhow::Result<JwtTokens> {
        use anyhow::Context as _;
        let method = opts
            .get("sign-method")
            .context("auth: invalid auth signature method (sign-method missing)")?;
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| anyhow::anyhow!("auth: invalid auth signature method {method:?}"))?;
        let ttl = match opts.get("ttl") {
            Some(t) => crate::gofmt::parse_duration_saturating(t)
                .map_err(|e| anyhow::anyhow!("auth: invalid auth options (ttl {t:?}: {e})"))?,
            None => DEFAULT_JWT_TTL,
        };
        let read = |name: &str| -> anyhow::Result<Option<Vec<u8>>> {
            opts.get(name)
                .map(|path| {
                    std::fs::read(path).with_context(|| format!("auth: read {name} {path}"))
                })
                .transpose()
        };
        let (public, private) = (read("pub-key")?, read("priv-key")?);
        let family = format!("{algorithm:?}");
        let (signing, verifying) = if family.starts_with("HS") {
            // etcd's hmacKey: the secret is priv-key, never pub-key. A
            // "public" key doubling as the HMAC secret would let whoever
            // can read it sign root tokens.
            let secret = private.context("auth: missing key data (priv-key for an HMAC method)")?;
            if public.is_some() {
                tracing::warn!("auth: pub-key is ignored with an HMAC sign method");
            }
            (
                Some(EncodingKey::from_secret(&secret)),
                DecodingKey::from_secret(&secret),
            )
        } else {
            let key_err = |e: jsonwebtoken::errors::Error| anyhow::anyhow!("auth: bad key: {e}");
            let signing = match &private {
                Some(pem) => Some(match &family[..2] {
                    "RS" | "PS" => EncodingKey::from_rsa_pem(pem).map_err(key_err)?,
                    "ES" => EncodingKey::from_ec_pem(pem).map_err(key_err)?,
                    _ => EncodingKey::from_ed_pem(pem).map_err(key_err)?,
                }),
                None => None,
            };
            let public = public.context("auth: missing key data (pub-key)")?;
            let verifying = match &family[..2] {
                "RS" | "PS" => DecodingKey::from_rsa_pem(&public).map_err(key_err)?,
                "ES" => DecodingKey::from_ec_pem(&public).map_err(key_err)?,
                _ => DecodingKey::from_ed_pem(&public).map_err(key_err)?,
            };
            (signing, verifying)
        };
        let tokens = JwtTokens {
            algorithm,
            signing,
            verifying,
            ttl,
        };
        // etcd refuses keys that do not match at startup
        if tokens.signing.is_some() {
            let probe = tokens.assign("", 0)?;
            if tokens.info(&probe).is_none() {
                anyhow::bail!("auth: public and private keys don't match");
            }
        }
        Ok(tokens)
    }

    pub fn assign(&self, user: &str, revision: u64) -> Result<String, Error> {
        let key = self.signing.as_ref().ok_or(Error::VerifyOnly)?;
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.ttl)
            .as_secs();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| Error::Internal(format!("sign a token: {e}")))
    }

    pub fn info(&self, token: &str) -> Option<AuthInfo> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        let data = jsonwebtoken::decode::<Claims>(token, &self.verifying, &validation).ok()?;
        Some(AuthInfo {
            username: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_expire_refresh_and_invalidate() {
        let t = SimpleTokens::new(Duration::from_millis(200));
        let a = t.assign("alice", "abcdefghijklmnop", 12);
        assert_eq!(a, "abcdefghijklmnop.12");
        assert_eq!(SimpleTokens::index_of(&a), Some(12));
        assert_eq!(SimpleTokens::index_of("nodot"), None);
        assert_eq!(t.user(&a).as_deref(), Some("alice"));
        std::thread::sleep(Duration::from_millis(120));
        assert!(t.user(&a).is_some(), "use refreshes the ttl");
        std::thread::sleep(Duration::from_millis(120));
        assert!(t.user(&a).is_some());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.user(&a).is_none(), "expired");
        let b = t.assign("bob", "x", 3);
        t.invalidate_user("bob");
        assert!(t.user(&b).is_none());
    }

    #[test]
    fn prefixes_are_letters() {
        let p = random_letters(SIMPLE_TOKEN_LENGTH);
        assert_eq!(p.len(), 16);
        assert!(p.chars().all(|c| c.is_ascii_alphabetic()));
        assert_ne!(p, random_letters(SIMPLE_TOKEN_LENGTH));
    }

    #[test]
    fn jwt_hs256_round_trip_and_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("secret");
        std::fs::write(&key, b"0123456789abcdef").expect("write");
        let opts = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", key.display());
        let Provider::Jwt(jwt) =
            Provider::from_options(&opts, Duration::from_secs(1)).expect("jwt options")
        else {
            panic!("not jwt");
        };
        let token = jwt.assign("alice", 7).expect("assign");
        let info = jwt.info(&token).expect("valid");
        assert_eq!((info.username.as_str(), info.revision), ("alice", 7));
        assert!(jwt.info("garbage").is_none());
        assert!(Provider::from_options("jwt,sign-method", Duration::ZERO).is_err());
        assert!(Provider::from_options("bogus", Duration::ZERO).is_err());
    }

    /// The HMAC secret is priv-key alone: a pub-key (which operators treat
    /// as public) is never used to sign or verify, so knowing it forges
    /// nothing (issue 23).
    #[test]
    fn jwt_hmac_needs_a_private_key_and_never_uses_the_public_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let public = dir.path().join("public");
        let private = dir.path().join("private");
        std::fs::write(&public, b"everyone-can-read-this").expect("write");
        std::fs::write(&private, b"only-the-members-know-this").expect("write");
        let only_public = format!("jwt,pub-key={},sign-method=HS256", public.display());
        let err = match Provider::from_options(&only_public, Duration::ZERO) {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("an HMAC method without priv-key must be refused"),
        };
        assert!(err.contains("priv-key"), "{err}");

        let both = format!(
            "jwt,pub-key={},priv-key={},sign-method=HS256",
            public.display(),
            private.display()
        );
        let Provider::Jwt(jwt) = Provider::from_options(&both, Duration::ZERO).expect("jwt") else {
            panic!("not jwt");
        };
        // a root token an attacker signs with the public key's bytes
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"username": "root", "revision": 99, "exp": 4102444800u64}),
            &EncodingKey::from_secret(b"everyone-can-read-this"),
        )
        .expect("encode");
        assert!(
            jwt.info(&forged).is_none(),
            "a token signed with pub-key was accepted"
        );
        let real = jwt.assign("root", 99).expect("assign");
        assert!(jwt.info(&real).is_some());
    }
}
