//! The custom handler's `outputs` task: the volume's saved results, filtered and paged.

use serde_json::{Map, Value, json};

use super::error::JobError;
use super::speech::Fields;
use crate::config::Settings;
use crate::storage::inputs::{self, InputError};
use crate::storage::outputs;

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 500;

pub async fn list(input: &Map<String, Value>, settings: &Settings) -> Result<Value, JobError> {
    let fields = Fields(input);
    // `folder` is the seeds' other name for `project`.
    let project = match (fields.string("project")?, fields.string("folder")?) {
        (Some(_), Some(_)) => {
            return Err(JobError::invalid(
                "send either project or folder, not both",
                "project",
            ));
        }
        (project, folder) => project.or(folder),
    };
    let search = fields.string("search")?.map(str::to_lowercase);
    let page = fields
        .integer("page", u64::from(u32::MAX))?
        .unwrap_or(1)
        .max(1);
    let page_size = fields
        .integer("page_size", MAX_PAGE_SIZE)?
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .max(1);
    let output = settings.volume.output();
    if let Some(project) = project {
        // The one path check: a project is a folder directly under output/.
        let path = inputs::under(&output, project).map_err(|e| match e {
            InputError::NotFound(_) => {
                JobError::not_found(format!("no project {project:?} in output/"), "project")
            }
            other => JobError::invalid(other.to_string(), "project"),
        })?;
        if project.contains('/') || !path.is_dir() {
            return Err(JobError::invalid(
                format!("project {project:?} is not a folder directly under output/"),
                "project",
            ));
        }
    }
    let listing = outputs::list(&output, project)
        .await
        .map_err(|e| JobError::Internal(e.into()))?;
    let matching: Vec<_> = listing
        .files
        .into_iter()
        .filter(|f| {
            search
                .as_ref()
                .is_none_or(|s| f.path.to_lowercase().contains(s))
        })
        .collect();
    let total = matching.len() as u64;
    let start = ((page - 1) * page_size).min(total) as usize;
    let files: Vec<_> = matching
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .collect();
    Ok(json!({
        "status": "success",
        "files": files,
        "total": total,
        "page": page,
        "page_size": page_size,
        "pages": total.div_ceil(page_size),
        "skipped_empty": listing.empty,
    }))
}
