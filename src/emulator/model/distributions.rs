//! Distributions: the stored `DistributionConfig`, trusted-key-group validation, updates that
//! start a deployment.

use super::*;

impl Model {
    fn check_distribution_config(&self, config: &Element, id: Option<&str>) -> ApiResult<()> {
        for required in [
            "CallerReference",
            "Origins",
            "DefaultCacheBehavior",
            "Comment",
            "Enabled",
        ] {
            if config.child(required).is_none() {
                return Err(ApiError::invalid(format!(
                    "DistributionConfig.{required} is required."
                )));
            }
        }
        if !matches!(config.child_text("Enabled"), Some("true" | "false")) {
            return Err(ApiError::invalid(
                "DistributionConfig.Enabled must be true or false.",
            ));
        }
        check_quantity(config.child("Origins"), "Origin", "Origins")?;
        let origins: Vec<&str> = config
            .path(&["Origins", "Items"])
            .into_iter()
            .flat_map(|i| i.children_named("Origin"))
            .filter_map(|o| o.child_text("Id"))
            .collect();
        if origins.is_empty() {
            return Err(ApiError::invalid(
                "A distribution needs at least one origin.",
            ));
        }
        check_quantity(
            config.child("CacheBehaviors"),
            "CacheBehavior",
            "CacheBehaviors",
        )?;
        let default = config.child("DefaultCacheBehavior").into_iter();
        let mut patterns = BTreeSet::new();
        for (index, behavior) in default.chain(cache_behaviors(config)).enumerate() {
            let name = if index == 0 {
                "DefaultCacheBehavior".to_owned()
            } else {
                format!(
                    "CacheBehavior {:?}",
                    behavior.child_text("PathPattern").unwrap_or_default()
                )
            };
            if index > 0 {
                let pattern = behavior.child_text("PathPattern").unwrap_or_default();
                if pattern.is_empty() || !patterns.insert(pattern) {
                    return Err(ApiError::invalid(format!(
                        "{name}: PathPattern must be present and unique."
                    )));
                }
            }
            let target = behavior.child_text("TargetOriginId").unwrap_or_default();
            if !origins.contains(&target) {
                return Err(ApiError::new(
                    404,
                    "NoSuchOrigin",
                    format!("{name}: no origin with Id {target:?}."),
                ));
            }
            if behavior.child_text("ViewerProtocolPolicy").is_none() {
                return Err(ApiError::invalid(format!(
                    "{name}: ViewerProtocolPolicy is required."
                )));
            }
            let Some(trusted) = behavior.child("TrustedKeyGroups") else {
                continue;
            };
            check_quantity(
                Some(trusted),
                "KeyGroup",
                &format!("{name}.TrustedKeyGroups"),
            )?;
            let ids = trusted_ids(behavior);
            let enabled = trusted.child_text("Enabled") == Some("true");
            if enabled == ids.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{name}: TrustedKeyGroups.Enabled must be true exactly when it lists key groups."
                )));
            }
            if ids.len() > self.settings.quotas.key_groups_per_behavior {
                return Err(ApiError::new(
                    400,
                    "TooManyKeyGroupsAssociatedToDistribution",
                    format!(
                        "{name}: at most {} key groups per cache behavior.",
                        self.settings.quotas.key_groups_per_behavior
                    ),
                ));
            }
            for group in &ids {
                if !self.key_groups.contains_key(group) {
                    return Err(ApiError::new(
                        400,
                        "TrustedKeyGroupDoesNotExist",
                        format!("{name}: key group {group} does not exist."),
                    ));
                }
                let users = self
                    .distributions
                    .values()
                    .filter(|d| {
                        Some(d.id.as_str()) != id
                            && d.behaviors()
                                .iter()
                                .any(|b| b.trusted_key_groups.contains(group))
                    })
                    .count();
                if users + 1 > self.settings.quotas.distributions_per_key_group {
                    return Err(ApiError::new(
                        400,
                        "TooManyDistributionsAssociatedToKeyGroup",
                        format!("Key group {group} is already trusted by {users} distributions."),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn create_distribution(&mut self, config: Element) -> ApiResult<StoredDistribution> {
        self.check_distribution_config(&config, None)?;
        let caller_reference = config.child_text("CallerReference").unwrap_or_default();
        if self
            .distributions
            .values()
            .any(|d| d.config.child_text("CallerReference") == Some(caller_reference))
        {
            return Err(ApiError::new(
                409,
                "DistributionAlreadyExists",
                "A distribution with this CallerReference already exists.",
            ));
        }
        let id = self.token('E', 13);
        self.insert_distribution(id, config)
    }

    /// Creates a distribution under a chosen ID, as if CloudFront had assigned it (for demos
    /// and tests that apply manifests naming a distribution).
    pub fn create_distribution_with_id(
        &mut self,
        id: &str,
        config: Element,
    ) -> ApiResult<StoredDistribution> {
        self.check_distribution_config(&config, None)?;
        if self.distributions.contains_key(id) {
            return Err(ApiError::new(
                409,
                "DistributionAlreadyExists",
                format!("A distribution with ID {id} already exists."),
            ));
        }
        self.insert_distribution(id.to_owned(), config)
    }

    fn insert_distribution(
        &mut self,
        id: String,
        config: Element,
    ) -> ApiResult<StoredDistribution> {
        let distribution = StoredDistribution {
            arn: format!("arn:aws:cloudfront::123456789012:distribution/{id}"),
            domain_name: format!("{}.cloudfront.net", id.to_lowercase()),
            last_modified_time: self.now(),
            config,
            etag: self.etag(),
            deploy_due: None,
            deployed: EdgeView::default(),
            id: id.clone(),
        };
        self.distributions.insert(id.clone(), distribution);
        self.begin_deployment(&id);
        self.get_distribution(&id).cloned()
    }

    pub fn get_distribution(&self, id: &str) -> ApiResult<&StoredDistribution> {
        self.distributions.get(id).ok_or_else(|| {
            ApiError::new(
                404,
                "NoSuchDistribution",
                format!("The specified distribution {id} does not exist."),
            )
        })
    }

    pub fn update_distribution(
        &mut self,
        id: &str,
        config: Element,
        if_match: Option<&str>,
    ) -> ApiResult<StoredDistribution> {
        let current = self.get_distribution(id)?;
        check_if_match(if_match, &current.etag)?;
        if config.child_text("CallerReference") != current.config.child_text("CallerReference") {
            return Err(ApiError::new(
                400,
                "IllegalUpdate",
                "The CallerReference of a distribution cannot change.",
            ));
        }
        self.check_distribution_config(&config, Some(id))?;
        let etag = self.etag();
        let now = self.now();
        let d = self
            .distributions
            .get_mut(id)
            .ok_or_else(|| ApiError::new(404, "NoSuchDistribution", "gone"))?;
        d.config = config;
        d.etag = etag;
        d.last_modified_time = now;
        self.begin_deployment(id);
        self.get_distribution(id).cloned()
    }

    pub fn delete_distribution(&mut self, id: &str, if_match: Option<&str>) -> ApiResult<()> {
        let current = self.get_distribution(id)?;
        check_if_match(if_match, &current.etag)?;
        if current.enabled() || current.deploy_due.is_some() {
            return Err(ApiError::new(
                409,
                "DistributionNotDisabled",
                "The distribution must be disabled and deployed before it can be deleted.",
            ));
        }
        self.distributions.remove(id);
        Ok(())
    }

    pub fn list_distributions(&self) -> Vec<&StoredDistribution> {
        self.distributions.values().collect()
    }

    /// Changes a distribution's ETag without a change of ours, as another writer would.
    pub fn touch_distribution(&mut self, id: &str) -> ApiResult<()> {
        self.get_distribution(id)?;
        let etag = self.etag();
        if let Some(d) = self.distributions.get_mut(id) {
            d.etag = etag;
        }
        Ok(())
    }
}
