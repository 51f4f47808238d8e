// The Serverless Deployment Broker in one resource group: identity, storage, Key Vault, monitoring, the Flex Consumption
// function app behind Easy Auth, the role assignments among them, the network isolation of storage and Key Vault, and
// the operators' workbook and alert rules. Local modules only (see README.md).

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

@description('Storage and Key Vault behind private endpoints with public network access off, the app integrated with a VNet. Off: public endpoints (README.md, "Network isolation").')
param networkIsolation bool = true

@description('Address space of the VNet (networkIsolation), and the subnets of the app and of the private endpoints.')
param virtualNetworkAddressPrefix string = '10.60.0.0/16'
param appSubnetAddressPrefix string = '10.60.0.0/24'
param privateEndpointSubnetAddressPrefix string = '10.60.1.0/24'

@description('Storage replication: Standard_ZRS where the region has availability zones, else Standard_LRS (README.md).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param storageSkuName string = 'Standard_ZRS'

@description('Resource id of an existing action group the alert rules notify; empty: one is created for alertEmail.')
param actionGroupId string = ''

@description('Email address of the action group created when actionGroupId is empty; both empty: the alerts notify no one.')
param alertEmail string = ''

@description('Application Insights availability-test locations that probe /api/health (2 failing raise the alert).')
param healthTestLocations array = [
  'emea-nl-ams-azr'
  'us-va-ash-azr'
  'apac-sg-sin-azr'
]

param tags object = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'azd-env-name': environmentName
})
// For-expressions, not map() with a lambda: checkov's bundled Bicep parser reads no lambdas (infra/README.md).
var hubWorkspaceIds = [for hub in items(crossRegionHubs): hub.value]
var crossRegionHubPairs = [for hub in items(crossRegionHubs): '${hub.key}=${hub.value}']

// Isolated, storage and Key Vault take no traffic from public networks; the app reaches them through the VNet.
var publicAccess = networkIsolation ? 'Disabled' : 'Enabled'
var firewallDefaultAction = networkIsolation ? 'Deny' : 'Allow'

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
    // The poison queues exist from the start, so operators can peek them before the first message lands there.
    queueNames: [
      requestsQueue
      workQueue
      eventsQueue
      alertsQueue
      '${requestsQueue}-poison'
      '${workQueue}-poison'
    ]
    tableNames: [
      runsTable
      findingsTable
    ]
    deploymentContainerName: 'app-package-${resourceToken}'
    skuName: storageSkuName
    publicNetworkAccess: publicAccess
    networkDefaultAction: firewallDefaultAction
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyVault'
  params: {
    name: 'kv-${resourceToken}'
    location: location
    publicNetworkAccess: publicAccess
    networkDefaultAction: firewallDefaultAction
    tags: allTags
  }
}

module network 'modules/network.bicep' = if (networkIsolation) {
  name: 'network'
  params: {
    name: 'vnet-broker-${resourceToken}'
    location: location
    addressPrefix: virtualNetworkAddressPrefix
    appSubnetPrefix: appSubnetAddressPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetAddressPrefix
    storageAccountId: storage.outputs.id
    keyVaultId: keyVault.outputs.id
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

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventGrid'
  params: {
    name: 'evgt-broker-${resourceToken}'
    location: location
    publisherPrincipalId: identity.outputs.principalId
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
  // Every deployment event also goes to the Event Grid topic (CloudEvents 1.0, identity auth).
  EVENT_GRID_TOPIC_ENDPOINT: eventGrid.outputs.endpoint
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
  BROKER_CROSS_REGION_HUBS: join(crossRegionHubPairs, ',')
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
    // Isolated, the host starts only once the private endpoints and their DNS records exist.
    virtualNetworkSubnetId: networkIsolation ? network.outputs.appSubnetId : ''
    brokerSettings: brokerSettings
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    authClientId: authClientId
    authAllowedAudiences: authAllowedAudiences
    authAllowedClientApplications: authAllowedClientApplications
    // The routes the app serves anonymously (health probe, OpenAPI document).
    authExcludedPaths: [
      '/api/health'
      '/api/openapi.json'
      '/api/asyncapi.json'
      '/api/docs'
      '/api/docs/swagger-ui.css'
      '/api/docs/swagger-ui-bundle.js'
      '/api/docs/docs.js'
    ]
    tags: union(allTags, {
      'azd-service-name': 'broker'
    })
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: 'broker-${resourceToken}'
    location: location
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    healthUrl: 'https://${functionApp.outputs.defaultHostName}/api/health'
    requestsQueue: requestsQueue
    workQueue: workQueue
    actionGroupId: actionGroupId
    alertEmail: alertEmail
    healthTestLocations: healthTestLocations
    tags: allTags
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    storageAccountId: storage.outputs.id
    requestsQueue: requestsQueue
    workQueue: workQueue
    tags: allTags
  }
}

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output BROKER_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEYVAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output BROKER_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output BROKER_IDENTITY_CLIENT_ID string = identity.outputs.clientId
