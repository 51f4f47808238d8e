// The broker identity's role assignments on the resources of this deployment, least privilege, each named
// guid(scope, principal, role) so a redeployment finds and keeps the same assignment.
// Its Azure AI Developer assignments on the target workspaces live in other resource groups: see infra/README.md.

@description('Object (principal) id of the broker\'s managed identity.')
param principalId string

param storageAccountName string
param keyVaultName string
param applicationInsightsName string

// Each call on one line: checkov's bundled Bicep parser cannot read arguments broken across lines (infra/README.md).
// Storage Queue Data Contributor: read, write and delete queue messages (triggers, work, events, alerts).
var storageQueueDataContributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '974c5e8b-45b9-4653-ba55-5f855dd0fb88')
// Storage Table Data Contributor: run records, claims and hygiene findings.
var storageTableDataContributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
// Storage Blob Data Owner: the Flex deployment package, timer status and the host's singleton locks.
var storageBlobDataOwner = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
// Key Vault Secrets Officer: set, read, recover and disable the endpoint key secrets.
var keyVaultSecretsOfficer = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
// Monitoring Metrics Publisher: Entra-authenticated telemetry ingestion into Application Insights.
var monitoringMetricsPublisher = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource queueDataContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storageAccount
  name: guid(storageAccount.id, principalId, storageQueueDataContributor)
  properties: {
    roleDefinitionId: storageQueueDataContributor
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableDataContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storageAccount
  name: guid(storageAccount.id, principalId, storageTableDataContributor)
  properties: {
    roleDefinitionId: storageTableDataContributor
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource blobDataOwnerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storageAccount
  name: guid(storageAccount.id, principalId, storageBlobDataOwner)
  properties: {
    roleDefinitionId: storageBlobDataOwner
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: keyVault
  name: guid(keyVault.id, principalId, keyVaultSecretsOfficer)
  properties: {
    roleDefinitionId: keyVaultSecretsOfficer
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisherAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: applicationInsights
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  properties: {
    roleDefinitionId: monitoringMetricsPublisher
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
