// The Serverless Deployment Broker in one resource group: identity, storage, Key Vault, monitoring, the Flex Consumption
// function app behind Easy Auth, and the role assignments among them. Local modules only (see README.md).

targetScope = 'resourceGroup'

@description('Azure region of every resource; Flex Consumption must be offered there.')
param location string = resourceGroup().location

@description('Short environment name (dev, prod, ...); it seeds the unique resource names.')
@minLength(1)
@maxLength(20)
param environmentName string

@description('Resource ids of the AI Foundry projects (Machine Learning workspaces) the broker may deploy into.')
@minLength(1)
param targetWorkspaceIds array

@description('Hub project per region for cross-region deployments, e.g. { eastus2: \'/subscriptions/.../workspaces/hub\' }.')
param crossRegionHubs object = {}

@description('Client id of the Entra ID app registration that Easy Auth validates callers\' tokens for.')
param authClientId string

@description('Token audiences Easy Auth accepts; empty: api://<authClientId> and the client id.')
param authAllowedAudiences array = []

@description('Client ids of the applications (portals) allowed to call the broker; empty: any in the tenant.')
param authAllowedClientApplications array = []

@description('Approved-model policy, comma-separated; empty: no restriction.')
param approvedRegistries string = ''
param approvedPublishers string = ''
param approvedModels string = ''

@description('`role-based` waives the Marketplace/SaaS actions for Owner, Contributor and Azure AI Developer; `strict` requires them.')
@allowed([
  'role-based'
  'strict'
])
param permissionStrictness string = 'role-based'

@description('NCRONTAB (seconds first, UTC) of the hygiene scan and of the scheduled key rotation.')
param hygieneSchedule string = '0 */15 * * * *'
param keyRotationSchedule string = '0 0 3 * * *'

@description('Per-rule hygiene remediation, rule=report|disable-secrets|delete,...; empty: report only.')
param hygieneRemediation string = ''

@description('Plan and audit hygiene remediation without touching anything. Turn off only after reviewing the reports.')
param hygieneDryRun bool = true

@description('Hold requests for Marketplace models in PendingApproval until a Broker.Approver decides (README, "Approvals").')
param approvalsEnabled bool = true

@description('Object ids of Entra groups whose members may approve requests, besides holders of the Broker.Approver app role.')
param approverGroupIds array = []

@description('Object ids of Entra groups whose members see every deployment, besides holders of the Broker.Auditor app role.')
param auditorGroupIds array = []

@description('Optional webhook that also receives hygiene alerts (Azure Monitor common alert schema).')
param hygieneWebhookUrl string = ''

@description('Accept only Entra-authenticated telemetry in Application Insights.')
param appInsightsDisableLocalAuth bool = true

param tags object = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'azd-env-name': environmentName
})
var hubWorkspaceIds = map(items(crossRegionHubs), hub => hub.value)

// Queue and table names, set once here for both the storage account and the app settings.
var requestsQueue = 'deployment-requests'
var workQueue = 'deployment-work'
var eventsQueue = 'deployment-events'
var alertsQueue = 'hygiene-alerts'
var runsTable = 'deploymentruns'
var findingsTable = 'hygienefindings'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-broker-${resourceToken}'
    location: location
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    queueNames: [
      requestsQueue
      workQueue
      eventsQueue
      alertsQueue
    ]
    tableNames: [
      runsTable
      findingsTable
    ]
    deploymentContainerName: 'app-package-${resourceToken}'
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyVault'
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    disableLocalAuth: appInsightsDisableLocalAuth
    tags: allTags
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// Every setting the broker reads in production (README, Configuration); local-only ones (devstack keys, emulator
// URLs) are left out, and storage is identity-based (the function app module adds those settings).
var brokerSettings = {
  AZURE_RESOURCE_MANAGER_URL: environment().resourceManager
  AZURE_KEYVAULT_URL: keyVault.outputs.uri
  DEPLOYMENT_REQUESTS_QUEUE: requestsQueue
  DEPLOYMENT_WORK_QUEUE: workQueue
  DEPLOYMENT_EVENTS_QUEUE: eventsQueue
  DEPLOYMENT_RUNS_TABLE: runsTable
  HYGIENE_ALERTS_QUEUE: alertsQueue
  HYGIENE_FINDINGS_TABLE: findingsTable
  BROKER_APPROVED_REGISTRIES: approvedRegistries
  BROKER_APPROVED_PUBLISHERS: approvedPublishers
  BROKER_APPROVED_MODELS: approvedModels
  // The workspace list alone restricts where the broker deploys; empty subscription and resource-group lists add no
  // further condition.
  BROKER_ALLOWED_SUBSCRIPTIONS: ''
  BROKER_ALLOWED_RESOURCE_GROUPS: ''
  BROKER_ALLOWED_WORKSPACES: join(targetWorkspaceIds, ',')
  // A model missing from the catalog is refused (model-unknown); the prefix rule decides only when this is 'true'.
  BROKER_ALLOW_UNCATALOGUED_MODELS: 'false'
  BROKER_PERMISSION_STRICTNESS: permissionStrictness
  BROKER_POLL_SECONDS: '2'
  BROKER_POLL_AGE_FRACTION: '0.1'
  BROKER_POLL_MAX_SECONDS: '30'
  BROKER_ACCESS_CACHE_SECONDS: '120'
  BROKER_ROLE_DEFINITION_CACHE_SECONDS: '21600'
  // Marketplace models wait for a Broker.Approver's decision when approvals are on (README, "Approvals").
  BROKER_APPROVALS_ENABLED: approvalsEnabled ? 'true' : 'false'
  BROKER_APPROVAL_MARKETPLACE: 'true'
  BROKER_APPROVAL_PUBLISHERS: ''
  BROKER_APPROVAL_MODELS: ''
  BROKER_APPROVAL_WORKSPACES: ''
  BROKER_APPROVAL_SUBSCRIPTIONS: ''
  BROKER_APPROVAL_EXPIRY_HOURS: '72'
  BROKER_APPROVER_ROLE: 'Broker.Approver'
  BROKER_APPROVER_GROUPS: join(approverGroupIds, ',')
  BROKER_AUDITOR_ROLE: 'Broker.Auditor'
  BROKER_AUDITOR_GROUPS: join(auditorGroupIds, ',')
  // The watchdog re-enqueues the step of a run silent for 60 s, looking every 30 s: a run a crashed host left behind
  // finishes within 2 minutes of a host being back (README, "Recovery without the lease").
  WATCHDOG_SCHEDULE: '*/30 * * * * *'
  WATCHDOG_STALL_SECONDS: '60'
  BROKER_CROSS_REGION_HUBS: join(map(items(crossRegionHubs), hub => '${hub.key}=${hub.value}'), ',')
  KEY_ROTATION_SCHEDULE: keyRotationSchedule
  KEY_VALIDITY_DAYS: '90'
  KEY_ROTATION_WINDOW_DAYS: '30'
  HYGIENE_SCHEDULE: hygieneSchedule
  HYGIENE_WORKSPACES: join(concat(targetWorkspaceIds, hubWorkspaceIds), ',')
  HYGIENE_REMEDIATION: hygieneRemediation
  // string(bool) would give 'True'; spell the flag the way the sample settings do.
  HYGIENE_DRY_RUN: hygieneDryRun ? 'true' : 'false'
  HYGIENE_DELETE_GRACE_HOURS: '24'
  HYGIENE_MAX_REMEDIATIONS: '10'
  HYGIENE_ENDPOINT_STATE_GRACE_MINUTES: '30'
  HYGIENE_UNHEALTHY_SUBSCRIPTION_STATUSES: 'Suspended,Unsubscribed'
  HYGIENE_HEALTHY_ENDPOINT_STATES: 'Online'
  HYGIENE_WEBHOOK_URL: hygieneWebhookUrl
  // The Python worker exports to Azure Monitor itself; the broker then leaves telemetry set-up to it.
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionApp'
  // The host must not start before its identity may read its storage.
  dependsOn: [
    rbac
  ]
  params: {
    name: 'func-broker-${resourceToken}'
    planName: 'plan-broker-${resourceToken}'
    location: location
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    brokerSettings: brokerSettings
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    authClientId: authClientId
    authAllowedAudiences: authAllowedAudiences
    authAllowedClientApplications: authAllowedClientApplications
    // The routes the app serves anonymously (health probe, OpenAPI document).
    authExcludedPaths: [
      '/api/health'
      '/api/openapi.json'
    ]
    tags: union(allTags, {
      'azd-service-name': 'broker'
    })
  }
}

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output BROKER_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEYVAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output BROKER_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output BROKER_IDENTITY_CLIENT_ID string = identity.outputs.clientId
