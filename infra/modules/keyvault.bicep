// The vault that receives every endpoint key. Access is Azure RBAC only (no access policies). Soft delete with purge
// protection keeps a deleted key secret recoverable for the whole retention period: the broker recovers, never purges.
// Isolated, the vault is reachable only through its private endpoint (modules/network.bicep).

@description('Key Vault name: 3-24 letters, digits and hyphens.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the vault.')
param location string

@description('Days a deleted secret stays recoverable (7-90).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Disabled: reachable through private endpoints only. main.bicep sets it from networkIsolation.')
@allowed([
  'Disabled'
  'Enabled'
])
param publicNetworkAccess string = 'Disabled'

@description('What the firewall does with traffic no rule lets in; Allow only while the public endpoint serves the app.')
@allowed([
  'Deny'
  'Allow'
])
param networkDefaultAction string = 'Deny'

param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: networkDefaultAction
      bypass: 'AzureServices'
    }
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
