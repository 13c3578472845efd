//! The two Entra audiences ACR's `/oauth2/exchange` takes, and the policy that picks one per
//! registry: which to ask Entra for first, and whether the other may be tried once when the
//! registry refuses the first as the wrong audience.
//!
//! The ARM audience is the identity's management-plane token (what `az login` gives): it goes
//! to a registry unasked only when that registry is an Azure Container Registry login server of
//! a known cloud (`*.azurecr.io`, `.cn`, `.us`, by the anchored rule). A custom domain, a
//! custom cloud's registry or a test host gets it only with `ACR_AUDIENCE=arm` (or a rule's
//! `audience = "arm"`): a front end there could refuse the ACR-audience token just to be sent
//! the ARM one.

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// The ACR audience scope for Entra tokens.
pub const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";
/// The Azure Resource Manager audience scope (what `az login` tokens carry).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// An audience of the Entra token exchanged at the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// ACR's own (`https://containerregistry.azure.net/.default`), the default.
    Acr,
    /// Azure Resource Manager's (`https://management.azure.com/.default`).
    Arm,
}

impl Audience {
    /// The `ACR_AUDIENCE` value, `acr` or `arm`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Audience> {
        match value.trim().to_ascii_lowercase().as_str() {
            "acr" => Some(Audience::Acr),
            "arm" => Some(Audience::Arm),
            _ => None,
        }
    }

    /// The Entra scope to ask for.
    pub fn scope(self) -> &'static str {
        match self {
            Audience::Acr => ACR_SCOPE,
            Audience::Arm => ARM_SCOPE,
        }
    }

    /// The `ACR_AUDIENCE` value that forces it: `acr` or `arm`.
    pub fn setting(self) -> &'static str {
        match self {
            Audience::Acr => "acr",
            Audience::Arm => "arm",
        }
    }

    /// The name messages use: `ACR` or `ARM`.
    pub fn name(self) -> &'static str {
        match self {
            Audience::Acr => "ACR",
            Audience::Arm => "ARM",
        }
    }

    /// The other one.
    pub fn other(self) -> Audience {
        match self {
            Audience::Acr => Audience::Arm,
            Audience::Arm => Audience::Acr,
        }
    }
}

/// The audience policy for one registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudiencePolicy {
    /// The audience asked for first (when the cache remembers none for the registry).
    pub first: Audience,
    /// Set explicitly (`ACR_AUDIENCE`): only this one is tried, and a remembered one is ignored.
    pub forced: bool,
    /// Whether the other audience may be tried unasked (and a remembered one used): only for a
    /// known cloud's ACR login server, and not `forced`.
    pub fallback: bool,
}

impl AudiencePolicy {
    /// The audience to try first, given the one the cache remembers for the registry and identity
    /// (used only where the other audience may be tried unasked: an entry may remember ARM's for
    /// a host from before that rule).
    pub fn start(self, remembered: Option<Audience>) -> Audience {
        match remembered {
            Some(a) if !self.forced && self.fallback => a,
            _ => self.first,
        }
    }
}

/// Whether a registry's refusal message (`code: message`) says the token's audience is not one
/// it takes, rather than that the identity lacks a role.
///
/// Real ACR answers an ARM-audience token on a registry with ARM-audience authentication
/// disabled (`az acr config authentication-as-arm update --status disabled`) with
/// `401 {"errors":[{"code":"UNAUTHORIZED","message":"arm aad token disallowed"}]}` (Azure SDK for
/// Go, `sdk/containers/azcontainerregistry/TROUBLESHOOTING.md`, "ARM access token is disabled").
/// That text is the one matched (`<kind> aad token disallowed`, so an ACR-audience refusal in the
/// same words counts too). No refusal of an ACR-audience token is documented, and any other
/// wording naming the audience is not taken as one: it is what a front end would write to be
/// sent the other token, and on a known cloud's ACR an unmatched refusal only costs a setting
/// (`ACR_AUDIENCE=arm`). A missing role is a 401 too, with another message: it is not matched.
pub(crate) fn is_audience_refusal(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.to_ascii_lowercase().contains("aad token disallowed"))
}

/// Whether Entra issued no token because the identity's tenant has no service principal for
/// the audience's resource: AADSTS500011 ("The resource principal named
/// https://containerregistry.azure.net was not found in the tenant", as quoted in
/// Azure/azure-cli#30445) or AADSTS50001 ("The resource is disabled or does not exist", what an
/// Azure Local identity provider answers for ACR's audience, Azure/azure-cli#33674). The other
/// audience may still be issued. A wrong secret, an unknown app or tenant have other codes and
/// are not matched. Read from the AADSTS code in the error, not its wording.
pub(crate) fn entra_lacks_audience(error: &Error) -> bool {
    match error {
        Error::Entra { detail, .. } => {
            aadsts_codes(detail).any(|code| code == 500_011 || code == 50_001)
        }
        _ => false,
    }
}

/// The numbers of the `AADSTS<digits>` codes in `text`.
fn aadsts_codes(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.match_indices("AADSTS").filter_map(|(at, tag)| {
        let rest = &text[at + tag.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_lacking_the_audience_is_told_by_its_code() {
        let entra = |detail: &str| Error::Entra {
            source_name: "service principal (secret)",
            detail: detail.into(),
        };
        for yes in [
            "invalid_resource: AADSTS500011: The resource principal named https://containerregistry.azure.net was not found in the tenant named t.",
            "AADSTS50001: The resource is disabled or does not exist.",
        ] {
            assert!(entra_lacks_audience(&entra(yes)), "{yes}");
        }
        for no in [
            "AADSTS7000215: Invalid client secret provided.",
            "AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.",
            "AADSTS5000111: not a code we know",
            "AADSTS: no digits; the resource principal named x was not found",
            "timed out",
        ] {
            assert!(!entra_lacks_audience(&entra(no)), "{no}");
        }
        let registry = Error::Exchange {
            registry: "r".into(),
            detail: "AADSTS500011".into(),
        };
        assert!(
            !entra_lacks_audience(&registry),
            "only Entra's own refusals"
        );
    }

    /// Only ACR's documented text: a front end's own wording naming the audience (the review's
    /// `token audience not accepted`) is a refusal like any other, not a reason to send the
    /// identity's token of another audience.
    #[test]
    fn only_acrs_documented_text_is_an_audience_refusal() {
        for other in [
            "UNAUTHORIZED: token audience not accepted",
            "UNAUTHORIZED: the access token's audience 'x' is not accepted",
            "InvalidAudience: Invalid authorization token audience.",
        ] {
            assert!(!is_audience_refusal(Some(other)), "{other}");
        }
    }

    #[test]
    fn a_forced_audience_ignores_the_remembered_one() {
        let free = AudiencePolicy {
            first: Audience::Acr,
            forced: false,
            fallback: true,
        };
        assert_eq!(free.start(None), Audience::Acr);
        assert_eq!(free.start(Some(Audience::Arm)), Audience::Arm);
        let forced = AudiencePolicy {
            first: Audience::Acr,
            forced: true,
            fallback: false,
        };
        assert_eq!(forced.start(Some(Audience::Arm)), Audience::Acr);
        // Not a known cloud's ACR: a remembered ARM audience is not used unasked.
        let other_host = AudiencePolicy {
            fallback: false,
            ..free
        };
        assert_eq!(other_host.start(Some(Audience::Arm)), Audience::Acr);
    }

    #[test]
    fn only_audience_refusals_are_recognised() {
        assert!(is_audience_refusal(Some(
            "UNAUTHORIZED: arm aad token disallowed"
        )));
        assert!(is_audience_refusal(Some(
            "UNAUTHORIZED: acr aad token disallowed"
        )));
        assert!(!is_audience_refusal(Some(
            "UNAUTHORIZED: principal 'p' has no role assignment on registry 'r'"
        )));
        assert!(!is_audience_refusal(None));
        assert_eq!(Audience::parse(" ARM "), Some(Audience::Arm));
        assert_eq!(Audience::parse("graph"), None);
    }
}
