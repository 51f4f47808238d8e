// The broker: a Flex Consumption (FC1) plan and a Python 3.11 function app that runs as the user-assigned identity,
// reaches storage with that identity (no connection strings), and sits behind App Service authentication, because the
// broker trusts X-MS-CLIENT-PRINCIPAL only when Easy Auth has put it there.

@description('Function app name (also the default host name prefix).')
param name string

@description('App Service plan name.')
param planName string

@description('Azure region of the plan and the app.')
param location string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (AzureWebJobsStorage__clientId, AZURE_CLIENT_ID).')
param identityClientId string

@description('Blob container URL that holds the deployment package.')
param deploymentContainerUrl string

@description('Storage service endpoints for the identity-based AzureWebJobsStorage connection.')
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string

@description('The broker\'s own settings (queue and table names, schedules, policy); merged over the platform settings.')
param brokerSettings object

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Client id of the Entra ID app registration Easy Auth validates tokens for.')
param authClientId string

@description('Token audiences Easy Auth accepts; empty: api://<authClientId> and the client id itself.')
param authAllowedAudiences array = []

@description('Client application ids allowed to call the broker; empty: any application of the tenant.')
param authAllowedClientApplications array = []

@description('Paths Easy Auth lets through unauthenticated (the anonymous health and OpenAPI routes).')
param authExcludedPaths array

@description('Subnet (delegated to Microsoft.App/environments) the app\'s outbound traffic goes through; empty: no VNet integration.')
param virtualNetworkSubnetId string = ''

@description('Upper bound on Flex Consumption instances.')
param maximumInstanceCount int = 40

@description('Memory per instance, in MB.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

param tags object = {}

var audiences = empty(authAllowedAudiences) ? [
  'api://${authClientId}'
  authClientId
] : authAllowedAudiences

var audienceValidation = {
  allowedAudiences: audiences
}
// No authorization policy when no list is given: Easy Auth then accepts any application of the tenant.
var clientApplicationPolicy = empty(authAllowedClientApplications) ? {} : {
  defaultAuthorizationPolicy: {
    allowedApplications: authAllowedClientApplications
  }
}

var identitySettings = {
  // The host's own storage connection, identity-based: blob for timer status and singleton locks, queue for triggers.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  // DefaultAzureCredential picks the user-assigned identity only when told its client id.
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Integrated, the app reaches storage and Key Vault through their private endpoints (modules/network.bicep).
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Top-level resources with `parent` rather than nested ones: pycep-parser keeps only one nested child per resource,
// and the infra tests read this file through it.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(brokerSettings, identitySettings)
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: authExcludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: union(audienceValidation, clientApplicationPolicy)
      }
    }
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
