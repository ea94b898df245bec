//! Public keys and key groups: unique names, in-use errors, quotas, `IfMatch`.

use super::*;

impl Model {
    pub fn create_public_key(&mut self, config: PublicKeyConfig) -> ApiResult<StoredPublicKey> {
        if config.caller_reference.is_empty() {
            return Err(ApiError::invalid("CallerReference is required."));
        }
        if !valid_name(&config.name) {
            return Err(ApiError::invalid(
                "The public key name must be 1-128 characters: letters, digits, hyphens and underscores.",
            ));
        }
        check_comment(config.comment.as_deref())?;
        check_encoded_key(&config.encoded_key)?;
        if self
            .public_keys
            .values()
            .any(|k| k.config.name == config.name)
        {
            return Err(ApiError::new(
                409,
                "PublicKeyAlreadyExists",
                format!("A public key with the name {} already exists.", config.name),
            ));
        }
        if self.public_keys.len() >= self.settings.quotas.public_keys {
            return Err(ApiError::new(
                400,
                "TooManyPublicKeys",
                "The maximum number of public keys for this account has been reached.",
            ));
        }
        let key = StoredPublicKey {
            id: self.token('K', 13),
            created_time: self.now(),
            config,
            etag: self.etag(),
        };
        self.public_keys.insert(key.id.clone(), key.clone());
        Ok(key)
    }

    pub fn get_public_key(&self, id: &str) -> ApiResult<&StoredPublicKey> {
        self.public_keys.get(id).ok_or_else(|| {
            ApiError::new(
                404,
                "NoSuchPublicKey",
                format!("The specified public key {id} does not exist."),
            )
        })
    }

    /// `UpdatePublicKey`: only the comment may change.
    pub fn update_public_key(
        &mut self,
        id: &str,
        config: PublicKeyConfig,
        if_match: Option<&str>,
    ) -> ApiResult<StoredPublicKey> {
        let current = self.get_public_key(id)?.clone();
        check_if_match(if_match, &current.etag)?;
        if config.name != current.config.name
            || config.encoded_key.trim() != current.config.encoded_key.trim()
            || config.caller_reference != current.config.caller_reference
        {
            return Err(ApiError::new(
                400,
                "CannotChangeImmutablePublicKeyFields",
                "You can't change the value of a public key's name, encoded key or caller reference.",
            ));
        }
        check_comment(config.comment.as_deref())?;
        let etag = self.etag();
        let key = self
            .public_keys
            .get_mut(id)
            .ok_or_else(|| ApiError::new(404, "NoSuchPublicKey", "gone"))?;
        key.config.comment = config.comment;
        key.etag = etag;
        Ok(key.clone())
    }

    pub fn list_public_keys(&self) -> Vec<&StoredPublicKey> {
        self.public_keys.values().collect()
    }

    pub fn delete_public_key(&mut self, id: &str, if_match: Option<&str>) -> ApiResult<()> {
        let current = self.get_public_key(id)?;
        check_if_match(if_match, &current.etag)?;
        if let Some(group) = self
            .key_groups
            .values()
            .find(|g| g.config.items.iter().any(|k| k == id))
        {
            return Err(ApiError::new(
                409,
                "PublicKeyInUse",
                format!(
                    "The specified public key is in use by key group {}.",
                    group.id
                ),
            ));
        }
        self.public_keys.remove(id);
        Ok(())
    }

    // ---- key groups ----

    fn check_key_group_config(&self, config: &KeyGroupConfig, id: Option<&str>) -> ApiResult<()> {
        if config.name.is_empty() || config.name.len() > 128 {
            return Err(ApiError::invalid(
                "The key group name must be 1-128 characters.",
            ));
        }
        check_comment(config.comment.as_deref())?;
        if config.items.is_empty() {
            return Err(ApiError::invalid(
                "A key group must contain at least one public key.",
            ));
        }
        if config.items.len() > self.settings.quotas.keys_per_key_group {
            return Err(ApiError::new(
                400,
                "TooManyPublicKeysInKeyGroup",
                format!(
                    "A key group may contain at most {} public keys.",
                    self.settings.quotas.keys_per_key_group
                ),
            ));
        }
        let unique: BTreeSet<&String> = config.items.iter().collect();
        if unique.len() != config.items.len() {
            return Err(ApiError::invalid(
                "A key group must not list a public key twice.",
            ));
        }
        if let Some(missing) = config
            .items
            .iter()
            .find(|k| !self.public_keys.contains_key(*k))
        {
            return Err(ApiError::invalid(format!(
                "The public key {missing} does not exist."
            )));
        }
        if self
            .key_groups
            .values()
            .any(|g| g.config.name == config.name && Some(g.id.as_str()) != id)
        {
            return Err(ApiError::new(
                409,
                "KeyGroupAlreadyExists",
                format!("A key group with the name {} already exists.", config.name),
            ));
        }
        Ok(())
    }

    pub fn create_key_group(&mut self, config: KeyGroupConfig) -> ApiResult<StoredKeyGroup> {
        self.check_key_group_config(&config, None)?;
        if self.key_groups.len() >= self.settings.quotas.key_groups {
            return Err(ApiError::new(
                400,
                "TooManyKeyGroups",
                "The maximum number of key groups for this account has been reached.",
            ));
        }
        let group = StoredKeyGroup {
            id: self.uuid(),
            last_modified_time: self.now(),
            config,
            etag: self.etag(),
        };
        self.key_groups.insert(group.id.clone(), group.clone());
        Ok(group)
    }

    pub fn get_key_group(&self, id: &str) -> ApiResult<&StoredKeyGroup> {
        self.key_groups.get(id).ok_or_else(|| {
            ApiError::new(
                404,
                "NoSuchResource",
                format!("The specified key group {id} does not exist."),
            )
        })
    }

    pub fn update_key_group(
        &mut self,
        id: &str,
        config: KeyGroupConfig,
        if_match: Option<&str>,
    ) -> ApiResult<StoredKeyGroup> {
        let current = self.get_key_group(id)?;
        check_if_match(if_match, &current.etag)?;
        self.check_key_group_config(&config, Some(id))?;
        let etag = self.etag();
        let now = self.now();
        let group = self
            .key_groups
            .get_mut(id)
            .ok_or_else(|| ApiError::new(404, "NoSuchResource", "gone"))?;
        group.config = config;
        group.etag = etag;
        group.last_modified_time = now;
        let group = group.clone();
        // Edge locations learn the new key set through the distributions that trust the group.
        let affected: Vec<String> = self
            .distributions
            .values()
            .filter(|d| {
                d.behaviors()
                    .iter()
                    .any(|b| b.trusted_key_groups.iter().any(|g| g == id))
            })
            .map(|d| d.id.clone())
            .collect();
        for distribution in affected {
            self.begin_deployment(&distribution);
        }
        Ok(group)
    }

    pub fn list_key_groups(&self) -> Vec<&StoredKeyGroup> {
        self.key_groups.values().collect()
    }

    /// IDs of the distributions with a cache behavior that trusts key group `id`
    /// (`ListDistributionsByKeyGroup`; a missing group is `NoSuchResource`).
    pub fn distributions_by_key_group(&self, id: &str) -> ApiResult<Vec<String>> {
        self.get_key_group(id).map_err(|_| {
            ApiError::new(
                404,
                "NoSuchResource",
                "The specified key group does not exist.",
            )
        })?;
        Ok(self
            .distributions
            .values()
            .filter(|d| {
                d.behaviors()
                    .iter()
                    .any(|b| b.trusted_key_groups.iter().any(|g| g == id))
            })
            .map(|d| d.id.clone())
            .collect())
    }

    pub fn delete_key_group(&mut self, id: &str, if_match: Option<&str>) -> ApiResult<()> {
        let current = self.get_key_group(id)?;
        check_if_match(if_match, &current.etag)?;
        if let Some(d) = self.distributions.values().find(|d| {
            d.behaviors()
                .iter()
                .any(|b| b.trusted_key_groups.iter().any(|g| g == id))
        }) {
            return Err(ApiError::new(
                409,
                "ResourceInUse",
                format!("The key group is referenced by distribution {}.", d.id),
            ));
        }
        self.key_groups.remove(id);
        Ok(())
    }
}
